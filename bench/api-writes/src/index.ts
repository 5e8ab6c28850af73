/**
 * An API's writes, for the bench's "cost to the API" figures: `POST
 * /insert?date=YYYY-MM-DD` inserts one request row into traffic_events, as
 * the example API would, and answers D1's own time for it (`meta.duration`)
 * and the time the Worker waited for D1. Every other request goes on to the
 * producer, so the stack's admin API stays on the same port.
 */
interface Env {
  D1: D1Database;
  ARCHIVER: Fetcher;
}

let inserted = 0;

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname !== "/insert") return env.ARCHIVER.fetch(request);
    const date = url.searchParams.get("date") ?? "";
    if (request.method !== "POST" || !/^\d{4}-\d{2}-\d{2}$/.test(date)) {
      return Response.json({ error: "POST /insert?date=YYYY-MM-DD" }, { status: 400 });
    }
    const n = ++inserted;
    const started = Date.now();
    try {
      const result = await env.D1.prepare(
        `INSERT INTO traffic_events (event_date, ts, path, method, status, country, latency_ms, bytes)
         VALUES (?1, ?2, ?3, 'GET', 200, 'DE', ?4, ?5)`,
      )
        .bind(date, Date.now(), `/api/items/${n % 97}`, n % 250, 1000 + (n % 5000))
        .run();
      return Response.json({ ok: true, waitMs: Date.now() - started, d1Ms: result.meta.duration });
    } catch (error) {
      return Response.json(
        { ok: false, waitMs: Date.now() - started, error: error instanceof Error ? error.message : String(error) },
        { status: 500 },
      );
    }
  },
} satisfies ExportedHandler<Env>;
