import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { nativeOf, strictD1 } from "./strict-d1/strict-d1.ts";

// Setup files may run more than once; only unapplied migrations are applied.
await applyD1Migrations(nativeOf(env.D1), env.TEST_MIGRATIONS);

// Every test, and every handler the test Worker runs, sees D1 with production's limits.
env.D1 = strictD1(env.D1);
