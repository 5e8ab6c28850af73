import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** A refusal with a status, a stable code and a message: `{ "error": { "code", "message" } }`. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function errorResponse(c: Context, error: ApiError): Response {
  return c.json({ error: { code: error.code, message: error.message } }, error.status, error.headers);
}
