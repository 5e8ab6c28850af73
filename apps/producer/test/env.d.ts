declare namespace Cloudflare {
  interface Env {
    TEST_MIGRATIONS: import("cloudflare:test").D1Migration[];
    TEST_TABLE_MIGRATIONS: import("cloudflare:test").D1Migration[];
    RANDOM_STEPS: string;
    RANDOM_SEED: string;
  }
}
