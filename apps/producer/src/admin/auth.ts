import { toHex } from "@path-stats/shared";
import { createMiddleware } from "hono/factory";
import { ApiError } from "./errors.ts";

const encoder = new TextEncoder();

async function sha256(text: string): Promise<ArrayBuffer> {
  return crypto.subtle.digest("SHA-256", encoder.encode(text));
}

/** A shorter token could be guessed: the admin API stays disabled until a longer one is set. */
export const MIN_TOKEN_LENGTH = 32;

/**
 * `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time (both
 * sides hashed first, so their lengths match too). No token configured, or
 * one shorter than MIN_TOKEN_LENGTH, means the admin API is disabled, never
 * open. The caller is known in logs by a
 * prefix of the hash of the token it sent, never by the token.
 */
export const requireAdminToken = createMiddleware<{ Bindings: Env; Variables: { caller?: string } }>(
  async (c, next) => {
    const expected = c.env.ADMIN_TOKEN;
    if (!expected) throw new ApiError(503, "admin_disabled", "the admin API is disabled: no ADMIN_TOKEN is configured");
    if (expected.length < MIN_TOKEN_LENGTH) {
      throw new ApiError(
        503,
        "admin_disabled",
        `the admin API is disabled: ADMIN_TOKEN has ${expected.length} characters, fewer than ${MIN_TOKEN_LENGTH} (make one with \`openssl rand -hex 32\`)`,
      );
    }
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer ([^\s]+)$/.exec(header);
    const challenge = { "WWW-Authenticate": 'Bearer realm="admin"' };
    if (!match?.[1]) throw new ApiError(401, "unauthorized", "send Authorization: Bearer <ADMIN_TOKEN>", challenge);
    const [sent, wanted] = await Promise.all([sha256(match[1]), sha256(expected)]);
    if (!crypto.subtle.timingSafeEqual(sent, wanted))
      throw new ApiError(401, "unauthorized", "wrong admin token", challenge);
    c.set("caller", toHex(sent).slice(0, 12));
    await next();
  },
);
