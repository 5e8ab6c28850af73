// Secrets are not in wrangler.jsonc, so `wrangler types` cannot see them.
interface Env {
  /** Bearer token for /admin; unset means the admin API answers 503. Set with `wrangler secret put ADMIN_TOKEN`. */
  ADMIN_TOKEN?: string;
}
