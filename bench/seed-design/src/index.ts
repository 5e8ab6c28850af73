/**
 * The seed design, as its write-up describes it before the fix: the whole day
 * read into one array (pages of 1000 by LIMIT/OFFSET), joined into one JSON
 * Lines string, compressed in one go and put as one object. `POST
 * /run?date=YYYY-MM-DD` runs it inside the request and answers what it did;
 * the bench times it. (Its heap cannot be sampled like the consumers': as the
 * only Worker of its `wrangler dev`, its inspector answers wrangler alone.)
 */
interface Env {
  D1: D1Database;
  R2_ARCHIVE: R2Bucket;
}

const PAGE = 1000;

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") return new Response("ok");
    const date = url.searchParams.get("date") ?? "";
    if (request.method !== "POST" || url.pathname !== "/run" || !/^\d{4}-\d{2}-\d{2}$/.test(date)) {
      return Response.json({ error: "POST /run?date=YYYY-MM-DD" }, { status: 400 });
    }
    const started = Date.now();
    const allEvents: Record<string, unknown>[] = [];
    let rowsRead = 0;
    for (let offset = 0; ; offset += PAGE) {
      const page = await env.D1.prepare(
        "SELECT * FROM traffic_events WHERE event_date = ?1 ORDER BY id LIMIT ?2 OFFSET ?3",
      )
        .bind(date, PAGE, offset)
        .all();
      rowsRead += page.meta.rows_read;
      allEvents.push(...page.results);
      if (page.results.length < PAGE) break;
    }
    const jsonl = allEvents.map((event) => JSON.stringify(event)).join("\n");
    const compressed = await new Response(
      new Blob([jsonl]).stream().pipeThrough(new CompressionStream("gzip")),
    ).arrayBuffer();
    const key = `seed-design/event_date=${date}/events.jsonl.gz`;
    await env.R2_ARCHIVE.put(key, compressed);
    return Response.json({
      rows: allEvents.length,
      rowsRead,
      // Held at once at the peak, besides the row objects: the whole day as one string.
      jsonlChars: jsonl.length,
      objectBytes: compressed.byteLength,
      ms: Date.now() - started,
    });
  },
};
