import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { nativeOf, strictD1 } from "./strict-d1/strict-d1.ts";

// Setup files may run more than once; only unapplied migrations are applied. Each set is recorded in
// its own table, as wrangler records them with the apps' configs (docs/adopting.md).
await applyD1Migrations(nativeOf(env.D1), env.TEST_MIGRATIONS, "archiver_migrations");
await applyD1Migrations(nativeOf(env.D1), env.TEST_TABLE_MIGRATIONS, "d1_migrations");

// Every test, and every handler the test Worker runs, sees D1 with production's limits.
env.D1 = strictD1(env.D1);
