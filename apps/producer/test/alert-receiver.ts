import { createServer } from "node:http";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    alertReceiverUrl: string;
  }
}

/**
 * A local webhook receiver for the alert tests (vitest globalSetup, in Node):
 * POST /hook records the JSON body and answers 204, or 500 while
 * `failNext` > 0; GET /received lists what was recorded; POST /reset clears
 * it and sets `failNext` from `?fail=`.
 */
export default async function setup(project: TestProject) {
  let received: unknown[] = [];
  let failNext = 0;
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? "/", "http://receiver");
    if (req.method === "POST" && url.pathname === "/hook") {
      if (failNext > 0) {
        failNext--;
        res.writeHead(500).end("injected receiver failure");
        return;
      }
      received.push(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      res.writeHead(204).end();
    } else if (req.method === "GET" && url.pathname === "/received") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(received));
    } else if (req.method === "POST" && url.pathname === "/reset") {
      received = [];
      failNext = Number(url.searchParams.get("fail") ?? 0);
      res.writeHead(204).end();
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("the alert receiver has no port");
  project.provide("alertReceiverUrl", `http://127.0.0.1:${address.port}`);
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
}
