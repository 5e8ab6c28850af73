import { defineConfig } from "vitest/config";

/** The local scripts' own tests, under Node (the Workers' tests are in apps/producer/test). */
export default defineConfig({
  test: { root: import.meta.dirname, include: ["*.test.ts"] },
});
