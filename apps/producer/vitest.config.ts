import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

export default defineConfig(async () => {
  // The archiver's own migrations, and the example table's (the "operator's"), applied in that order.
  const migrations = await readD1Migrations(path.join(import.meta.dirname, "../../migrations"));
  const tableMigrations = await readD1Migrations(
    path.join(import.meta.dirname, "../../examples/traffic-events/migrations"),
  );
  return {
    plugins: [
      cloudflareTest({
        // TEST_ENV=staging: the same tests with staging's queue names (test/wrangler.jsonc, env.staging).
        wrangler: { configPath: "./test/wrangler.jsonc", environment: process.env.TEST_ENV || undefined },
        miniflare: {
          bindings: {
            TEST_MIGRATIONS: migrations,
            TEST_TABLE_MIGRATIONS: tableMigrations,
            // The randomized fault test: RANDOM_STEPS=2000 for a long run, RANDOM_SEED=n to replay one.
            RANDOM_STEPS: process.env.RANDOM_STEPS ?? "60",
            RANDOM_SEED: process.env.RANDOM_SEED ?? "",
          },
        },
      }),
    ],
    test: {
      setupFiles: ["./test/apply-migrations.ts"],
      // A local HTTP receiver for the alert webhook.
      globalSetup: ["./test/alert-receiver.ts"],
      testTimeout: 120_000,
      hookTimeout: 120_000,
    },
  };
});
