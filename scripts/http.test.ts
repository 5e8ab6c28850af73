import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { HttpRequestError, httpRequest } from "./http.ts";

let servers: Server[] = [];

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Holds the event loop, as a script doing synchronous work would. */
function blockEventLoop(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

afterEach(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  servers = [];
});

describe("the scripts' HTTP helper", () => {
  it("succeeds after the server closed an idle keep-alive connection while the script was blocked", async () => {
    const base = await serve((_req, res) => res.end("ok"));
    const server = servers[0] as Server;
    // The server drops idle connections after 50 ms, like the local stack does after a few seconds.
    server.keepAliveTimeout = 50;
    expect(await httpRequest(`${base}/a`, { method: "POST" })).toEqual({ status: 200, body: "ok" });
    blockEventLoop(300);
    expect(await httpRequest(`${base}/b`, { method: "POST" })).toEqual({ status: 200, body: "ok" });
  });

  it("retries a GET whose connection is dropped before the answer", async () => {
    let calls = 0;
    const base = await serve((req, res) => {
      calls++;
      if (calls <= 2) req.socket.destroy();
      else res.end("third time");
    });
    expect(await httpRequest(`${base}/status`)).toEqual({ status: 200, body: "third time" });
    expect(calls).toBe(3);
  });

  it("retries a POST marked idempotent whose connection is dropped", async () => {
    let calls = 0;
    const base = await serve((req, res) => {
      calls++;
      if (calls === 1) req.socket.destroy();
      else res.end("planned");
    });
    const response = await httpRequest(`${base}/admin/trigger-archive`, { method: "POST", idempotent: true });
    expect(response.body).toBe("planned");
    expect(calls).toBe(2);
  });

  it("does not repeat a POST that is not known to be safe, and says so instead of 'fetch failed'", async () => {
    let calls = 0;
    const base = await serve((req) => {
      calls++;
      req.socket.destroy();
    });
    const error = await httpRequest(`${base}/admin/dead-letters/replay`, { method: "POST", body: "{}" }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(HttpRequestError);
    expect((error as Error).message).toMatch(/POST .*replay lost its connection before an answer/);
    expect((error as Error).message).toMatch(/may or may not have taken effect/);
    expect(calls).toBe(1);
  });

  it("retries any request while the connection is refused, as it never left", async () => {
    const probe = await serve(() => {});
    const port = Number(new URL(probe).port);
    await new Promise((resolve) => servers[0]?.close(resolve));
    servers = [];
    // Nothing listens on the port for 300 ms, then the server comes (back) up.
    setTimeout(() => {
      const server = createServer((_req, res) => res.end("up"));
      servers.push(server);
      server.listen(port, "127.0.0.1");
    }, 300);
    expect(await httpRequest(`${probe}/admin/trigger-cleanup`, { method: "POST" })).toEqual({
      status: 200,
      body: "up",
    });
  });

  it("gives up on a refused connection with a message that names the stack", async () => {
    const probe = await serve(() => {});
    await new Promise((resolve) => servers[0]?.close(resolve));
    servers = [];
    await expect(httpRequest(`${probe}/healthz`, { attempts: 2 })).rejects.toThrow(
      /GET .*healthz failed 2 times: .*ECONNREFUSED.*is the local stack running/,
    );
  });
});
