/**
 * `pnpm run deploy -- --env production [--dry-run]`: applies the archiver's
 * D1 migrations to the environment's remote database (after carrying over
 * the records of a database set up before archiver_migrations existed:
 * migrations.ts), then deploys the two
 * consumers, then the producer, stopping at the first failure and saying
 * what already took effect. (`pnpm deploy` without `run` is pnpm's own
 * command, not this script.)
 *
 * Resource ids are never committed: the committed configs carry a
 * placeholder D1 id, and this script writes a copy of each app's config with
 * the environment's id (`apps/<app>/.wrangler.deploy.jsonc`, ignored by git)
 * from PATH_STATS_D1_ID_<ENV> (for example PATH_STATS_D1_ID_PRODUCTION) or
 * from `deploy/<env>.json` (`{ "d1DatabaseId": "…" }`, ignored by git).
 *
 * --dry-run prints every command it would run and checks each Worker's
 * bundle and config with `wrangler deploy --dry-run`; it needs no account.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ROOT } from "./lib.ts";
import { ARCHIVER_MIGRATIONS_TABLE, carryOverMigrationHistory } from "./migrations.ts";

const ENVIRONMENTS = ["staging", "production"] as const;
type Environment = (typeof ENVIRONMENTS)[number];
/** Deploy order: consumers first, so the producer never sends to a queue without its new consumer. */
const APPS = ["archive-consumer", "cleanup-consumer", "producer"] as const;
type App = (typeof APPS)[number];
const PLACEHOLDER_ID = "00000000-0000-0000-0000-000000000000";
const DATABASE_NAME: Record<Environment, string> = {
  staging: "path-stats-db-staging",
  production: "path-stats-db",
};

/** A refusal or a failed step: printed as one message, exit code 1. */
class DeployError extends Error {}

function fail(message: string): never {
  throw new DeployError(message);
}

function databaseId(env: Environment, dryRun: boolean): string {
  const variable = `PATH_STATS_D1_ID_${env.toUpperCase()}`;
  const fromEnv = process.env[variable]?.trim();
  if (fromEnv) return fromEnv;
  const file = join(ROOT, "deploy", `${env}.json`);
  if (existsSync(file)) {
    const id = (JSON.parse(readFileSync(file, "utf8")) as { d1DatabaseId?: string }).d1DatabaseId?.trim();
    if (id) return id;
    fail(`${file} has no "d1DatabaseId"`);
  }
  if (dryRun) return PLACEHOLDER_ID;
  fail(
    `no D1 database id for ${env}: set ${variable}, or write deploy/${env}.json with {"d1DatabaseId": "…"} ` +
      `(the id \`wrangler d1 create ${DATABASE_NAME[env]}\` printed)`,
  );
}

/** A copy of the app's config with the environment's D1 id, beside the original so relative paths still hold. */
function deployConfig(app: string, id: string): string {
  const source = join(ROOT, "apps", app, "wrangler.jsonc");
  const text = readFileSync(source, "utf8");
  if (!text.includes(PLACEHOLDER_ID)) fail(`${source} no longer carries the placeholder D1 id ${PLACEHOLDER_ID}`);
  const target = join(ROOT, "apps", app, ".wrangler.deploy.jsonc");
  writeFileSync(target, text.replaceAll(PLACEHOLDER_ID, id));
  return target;
}

/**
 * A consumer renews its claim at most every quarter lease, between steps that
 * may each take up to D1's 30 s statement limit (or a part upload), so a
 * lease under 4/3 × 30 s could lapse under a live consumer and let a second
 * one upload the same parts. Tests run with 1 s; a deployed environment may not.
 */
const MIN_DEPLOYED_LEASE_SECONDS = 40;

function checkLease(app: App, env: Environment): void {
  const source = join(ROOT, "apps", app, "wrangler.jsonc");
  // The configs carry only whole-line comments.
  const json = readFileSync(source, "utf8")
    .split("\n")
    .filter((line) => !line.trim().startsWith("//"))
    .join("\n");
  const config = JSON.parse(json) as {
    vars?: Record<string, string>;
    env?: Record<string, { vars?: Record<string, string> }>;
  };
  const lease = config.env?.[env]?.vars?.LEASE_SECONDS;
  if (lease !== undefined && Number(lease) < MIN_DEPLOYED_LEASE_SECONDS) {
    fail(
      `${source}: env.${env}.vars.LEASE_SECONDS is ${lease}; a deployed environment needs at least ` +
        `${MIN_DEPLOYED_LEASE_SECONDS} (a claim is renewed every quarter lease, between steps of up to 30 s)`,
    );
  }
}

function wrangler(args: string[]): boolean {
  const result = spawnSync(join(ROOT, "node_modules", ".bin", "wrangler"), args, { cwd: ROOT, stdio: "inherit" });
  return result.status === 0;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    // `pnpm run deploy -- --env x` passes the "--" on.
    args: process.argv.slice(2).filter((arg, i) => !(i === 0 && arg === "--")),
    options: { env: { type: "string" }, "dry-run": { type: "boolean", default: false } },
    strict: true,
  });
  const env = values.env as Environment | undefined;
  if (!env || !ENVIRONMENTS.includes(env)) fail(`--env must be one of ${ENVIRONMENTS.join(", ")}`);
  const dryRun = values["dry-run"] ?? false;
  const id = databaseId(env, dryRun);
  if (dryRun && id === PLACEHOLDER_ID) console.log(`(dry run: no D1 id for ${env} given; using the placeholder)`);

  for (const app of APPS) checkLease(app, env);
  const configs = Object.fromEntries(APPS.map((app) => [app, deployConfig(app, id)])) as Record<App, string>;
  const deployArgs = (app: App) => ["deploy", "--env", env, "-c", configs[app]];
  const migrate = ["d1", "migrations", "apply", DATABASE_NAME[env], "--remote", "--env", env, "-c", configs.producer];
  const steps: { what: string; args: string[]; dryRunArgs?: string[]; before?: () => Promise<void> }[] = [
    {
      what: `apply the archiver's D1 migrations to ${DATABASE_NAME[env]} (remote)`,
      args: migrate,
      before: async () => {
        const carried = await carryOverMigrationHistory(DATABASE_NAME[env], { remote: env }, configs.producer);
        if (carried.length) console.log(`  recorded in ${ARCHIVER_MIGRATIONS_TABLE} first: ${carried.join(", ")}`);
      },
    },
    ...APPS.map((app) => ({
      what: `deploy ${app} (${env})`,
      args: deployArgs(app),
      dryRunArgs: [...deployArgs(app), "--dry-run", "--outdir", `.wrangler/deploy-dry-run/${app}`],
    })),
  ];

  const done: string[] = [];
  try {
    for (const [i, step] of steps.entries()) {
      console.log(`\n[${i + 1}/${steps.length}] ${step.what}\n  wrangler ${step.args.join(" ")}`);
      if (dryRun) {
        if (!step.dryRunArgs) {
          console.log("  (dry run: not run; it needs the account)");
          continue;
        }
        console.log("  (dry run: checking the bundle and config only)");
      }
      const prepared =
        dryRun || !step.before
          ? true
          : await step.before().then(
              () => true,
              (error: unknown) => {
                console.error(error instanceof Error ? error.message : error);
                return false;
              },
            );
      if (!prepared || !wrangler(dryRun && step.dryRunArgs ? step.dryRunArgs : step.args)) {
        fail(
          `step ${i + 1} failed: ${step.what}. ` +
            (done.length ? `Already done: ${done.join("; ")}. ` : "Nothing was changed. ") +
            "Nothing after it ran; fix the cause and run the same command again (every step can be repeated).",
        );
      }
      done.push(step.what);
    }
  } finally {
    for (const config of Object.values(configs)) rmSync(config, { force: true });
  }
  console.log(dryRun ? `\ndry run of ${env} passed: nothing was deployed` : `\n${env} deployed: ${done.join("; ")}`);
}

try {
  await main();
} catch (error) {
  if (!(error instanceof DeployError)) throw error;
  console.error(`deploy: ${error.message}`);
  process.exitCode = 1;
}
