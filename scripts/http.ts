/**
 * HTTP for the local scripts (demo, restart check, bench).
 *
 * Every request gets a connection of its own (no keep-alive). A kept-alive
 * connection can be closed by the server while the script is busy, and the
 * next request then goes out on a dead socket ("fetch failed: other side
 * closed"); the scripts poll at most a few times a second, so a new
 * connection per request costs nothing here.
 *
 * A connection error is retried, with backoff, when repeating the request is
 * safe: always for GET and HEAD, for any method when the connection was
 * refused (the request never left), and for requests the caller marks
 * `idempotent`. Otherwise the error says what was sent, what happened, and
 * that the request may or may not have taken effect.
 */
import { request } from "node:http";

export interface HttpResponse {
  status: number;
  body: string;
}

export interface HttpOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** The request may be repeated without harm (the admin API's triggers are). GET and HEAD always are. */
  idempotent?: boolean;
  /** Tries in all, for connection errors that are safe to retry. */
  attempts?: number;
  /** How long one try may take, connection to last byte. */
  timeoutMs?: number;
}

/** A request that did not get an answer; the message says whether it may have been applied. */
export class HttpRequestError extends Error {
  override name = "HttpRequestError";
  /** The socket error's code, e.g. ECONNRESET. (No parameter property: Node runs this file by stripping types.) */
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.code = code;
  }
}

/** Socket-level errors worth another try on a fresh connection. */
const CONNECTION_ERRORS = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH"]);

function once(url: string, options: HttpOptions): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: options.method ?? "GET",
      headers: {
        ...options.headers,
        ...(options.body === undefined ? {} : { "content-length": String(Buffer.byteLength(options.body)) }),
      },
      agent: false, // a fresh connection, closed after the response
      timeout: options.timeoutMs ?? 120_000,
    });
    req.on("timeout", () => req.destroy(Object.assign(new Error("timed out"), { code: "ETIMEDOUT" })));
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.end(options.body);
  });
}

/** Sends one HTTP request, retrying connection errors where that is safe (see the module's comment). */
export async function httpRequest(url: string, options: HttpOptions = {}): Promise<HttpResponse> {
  const method = options.method ?? "GET";
  const attempts = options.attempts ?? 6;
  const safe = method === "GET" || method === "HEAD" || options.idempotent === true;
  for (let attempt = 1; ; attempt++) {
    try {
      return await once(url, options);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? "UNKNOWN";
      const message = (error as Error).message;
      const retryable = CONNECTION_ERRORS.has(code) && (safe || code === "ECONNREFUSED");
      if (retryable && attempt < attempts) {
        await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** (attempt - 1)));
        continue;
      }
      const what = `${method} ${url}`;
      if (!CONNECTION_ERRORS.has(code)) throw new HttpRequestError(`${what} failed: ${message} (${code})`, code);
      if (retryable) {
        throw new HttpRequestError(
          `${what} failed ${attempts} times: ${message} (${code}); is the local stack running?`,
          code,
        );
      }
      throw new HttpRequestError(
        `${what} lost its connection before an answer: ${message} (${code}). It was not retried because it is ` +
          "not known to be safe to repeat; it may or may not have taken effect: check the status before sending it again.",
        code,
      );
    }
  }
}
