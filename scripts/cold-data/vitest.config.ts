import { defineConfig } from "vitest/config";

/** Querying downloaded archives with DuckDB, against a local stack of its own (ARCHIVER_PORT, default 8799). */
export default defineConfig({
  test: {
    root: import.meta.dirname,
    include: ["*.test.ts"],
    testTimeout: 10 * 60_000,
    hookTimeout: 10 * 60_000,
  },
});
