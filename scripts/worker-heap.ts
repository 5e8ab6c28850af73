/**
 * The Workers' own JavaScript heap, as Cloudflare limits it (128 MB per
 * isolate), read through workerd's inspector while a local stack works: the
 * process's RSS is a different question (SQLite, the allocator, every
 * isolate together). `wrangler dev` starts workerd with an inspector on a
 * random port; its `/json` lists each isolate (`core:user:<worker name>`),
 * and `Runtime.getHeapUsage` over that isolate's WebSocket answers
 * `usedSize`.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

const V8_FLAGS = "MINIFLARE_WORKERD_V8_FLAGS";

/**
 * Makes every stack started from now on run each isolate with V8's old space
 * limited to `mib` MiB (\`--max-old-space-size\`: miniflare hands this
 * variable to workerd as V8 flags, and the stack inherits the environment).
 * Production gives an isolate 128 MB, the local runtime none. With
 * `semiSpaceMib`, V8's young generation is held too (\`--max-semi-space-size\`):
 * the used heap then counts little garbage beside what old space holds.
 * Returns the undo.
 */
export function limitIsolateHeaps(mib: number, semiSpaceMib?: number): () => void {
  process.env[V8_FLAGS] =
    `--max-old-space-size=${mib}${semiSpaceMib === undefined ? "" : ` --max-semi-space-size=${semiSpaceMib}`}`;
  return () => {
    delete process.env[V8_FLAGS];
  };
}

/**
 * Adds V8 flags for every stack started from now on (after
 * limitIsolateHeaps, which sets the variable anew), e.g. `--trace-gc`:
 * V8 then prints a line per collection to workerd's output.
 */
export function addIsolateV8Flags(flags: string): void {
  process.env[V8_FLAGS] = `${process.env[V8_FLAGS] ?? ""} ${flags}`.trim();
}

/** TCP ports that `pids` listen on, from /proc (no ss or lsof needed). */
function listeningPorts(pids: number[]): number[] {
  const inodes = new Set<string>();
  for (const pid of pids) {
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        const link = readlinkSync(`/proc/${pid}/fd/${fd}`, { encoding: "utf8" });
        const match = /^socket:\[(\d+)\]$/.exec(link);
        if (match?.[1]) inodes.add(match[1]);
      }
    } catch {}
  }
  const ports: number[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let lines: string[] = [];
    try {
      lines = readFileSync(table, "utf8").split("\n").slice(1);
    } catch {}
    for (const line of lines) {
      const fields = line.trim().split(/\s+/);
      // local_address is fields[1] (hex ip:port), st is fields[3] (0A = LISTEN), inode is fields[9].
      if (fields[3] === "0A" && inodes.has(fields[9] ?? "")) {
        ports.push(Number.parseInt(fields[1]?.split(":")[1] ?? "0", 16));
      }
    }
  }
  return ports;
}

/** The inspector port among the workerd processes' ports: the one whose /json lists user workers. */
export async function findInspectorPort(workerdPids: number[]): Promise<number> {
  for (const port of listeningPorts(workerdPids)) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/json`, { signal: AbortSignal.timeout(1000) });
      const list = (await response.json()) as { id?: string }[];
      if (Array.isArray(list) && list.some((t) => t.id?.startsWith("core:user:"))) return port;
    } catch {}
  }
  throw new Error(`no workerd inspector listing user workers among pids ${workerdPids.join(", ")}`);
}

export interface HeapSampler {
  /** Stops sampling; the largest used heap (bytes) seen per worker, NaN for one that never answered. */
  stop(): Promise<Record<string, number>>;
}

/**
 * Samples each worker's used heap every `intervalMs` until stopped. A
 * session that has answered nothing for a second is opened again: workerd
 * was seen to leave one isolate's new session unanswered for a whole
 * archive while another's answered.
 */
export async function sampleHeaps(port: number, workers: string[], intervalMs = 100): Promise<HeapSampler> {
  const peaks: Record<string, number> = {};
  const sockets = new Map<string, { socket: WebSocket; openedAt: number; answered: boolean }>();
  const open = async (worker: string) => {
    const list = (await (await fetch(`http://127.0.0.1:${port}/json`)).json()) as {
      id: string;
      webSocketDebuggerUrl: string;
    }[];
    const target = list.find((t) => t.id === `core:user:${worker}`);
    if (!target) throw new Error(`the inspector lists no worker ${worker}`);
    const socket = new WebSocket(target.webSocketDebuggerUrl);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error(`cannot open the inspector of ${worker}`));
    });
    const session = { socket, openedAt: Date.now(), answered: false };
    // Events (an execution context created, …) come too: only answers carry a usedSize.
    socket.onmessage = (message) => {
      const answer = JSON.parse(String(message.data)) as { result?: { usedSize?: number } };
      const used = answer.result?.usedSize;
      if (typeof used === "number") {
        session.answered = true;
        peaks[worker] = Math.max(Number.isNaN(peaks[worker]) ? 0 : (peaks[worker] ?? 0), used);
      }
    };
    sockets.get(worker)?.socket.close();
    sockets.set(worker, session);
  };
  for (const worker of workers) {
    peaks[worker] = Number.NaN;
    await open(worker);
  }
  let id = 0;
  let reopening = false;
  const timer = setInterval(() => {
    for (const [worker, session] of sockets) {
      if (!session.answered && !reopening && Date.now() - session.openedAt > 1000) {
        reopening = true;
        open(worker)
          .catch(() => {})
          .finally(() => {
            reopening = false;
          });
        continue;
      }
      if (session.socket.readyState === WebSocket.OPEN)
        session.socket.send(JSON.stringify({ id: ++id, method: "Runtime.getHeapUsage" }));
    }
  }, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      // Answers to the last requests.
      await new Promise((resolve) => setTimeout(resolve, intervalMs * 2));
      for (const { socket } of sockets.values()) socket.close();
      return { ...peaks };
    },
  };
}

/** One DevTools session with a worker's isolate: commands answered by id, events to a listener. */
export interface InspectorSession {
  /** Fails if no answer comes within `timeoutMs` (workerd leaves some requests unanswered; seen under load). */
  send<T = unknown>(method: string, params?: Record<string, unknown>, timeoutMs?: number): Promise<T>;
  onEvent(listener: (method: string, params: Record<string, unknown>) => void): void;
  close(): void;
}

export async function openInspector(port: number, worker: string): Promise<InspectorSession> {
  const list = (await (await fetch(`http://127.0.0.1:${port}/json`)).json()) as {
    id: string;
    webSocketDebuggerUrl: string;
  }[];
  // A user worker by name, or any other isolate by its id (the local D1 is `d1:db`).
  const target = list.find((t) => t.id === `core:user:${worker}` || t.id === worker);
  if (!target) throw new Error(`the inspector lists no worker ${worker}`);
  const socket = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error(`cannot open the inspector of ${worker}`));
  });
  let nextId = 0;
  const pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  const listeners: ((method: string, params: Record<string, unknown>) => void)[] = [];
  socket.onmessage = (message) => {
    const data = JSON.parse(String(message.data)) as {
      id?: number;
      result?: unknown;
      error?: { message: string };
      method?: string;
      params?: Record<string, unknown>;
    };
    if (data.id !== undefined) {
      const waiter = pending.get(data.id);
      pending.delete(data.id);
      if (data.error) waiter?.reject(new Error(data.error.message));
      else waiter?.resolve(data.result);
    } else if (data.method) {
      for (const listener of listeners) listener(data.method, data.params ?? {});
    }
  };
  return {
    send<T>(method: string, params: Record<string, unknown> = {}, timeoutMs = 60_000) {
      const id = ++nextId;
      socket.send(JSON.stringify({ id, method, params }));
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`the inspector of ${worker} did not answer ${method} within ${timeoutMs / 1000} s`));
        }, timeoutMs);
        const settle =
          <A extends unknown[]>(f: (...a: A) => void) =>
          (...a: A) => {
            clearTimeout(timer);
            f(...a);
          };
        pending.set(id, { resolve: settle(resolve as (v: unknown) => void), reject: settle(reject) });
      });
    },
    onEvent(listener) {
      listeners.push(listener);
    },
    close() {
      socket.close();
    },
  };
}

export interface HeapGroup {
  type: string;
  name: string;
  count: number;
  bytes: number;
}

/**
 * A heap snapshot of the isolate (live objects only: taking one collects
 * garbage first), summed by node type and constructor name, largest first.
 */
export async function heapSnapshotSummary(session: InspectorSession): Promise<{ total: number; groups: HeapGroup[] }> {
  const pieces: string[] = [];
  session.onEvent((method, params) => {
    if (method === "HeapProfiler.addHeapSnapshotChunk") pieces.push(String(params.chunk));
  });
  await session.send("HeapProfiler.enable");
  await session.send("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
  const snapshot = JSON.parse(pieces.join("")) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snapshot.snapshot.meta.node_fields;
  const typeNames = snapshot.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt] = ["type", "name", "self_size"].map((f) => fields.indexOf(f)) as [
    number,
    number,
    number,
  ];
  const groups = new Map<string, HeapGroup>();
  let total = 0;
  for (let i = 0; i < snapshot.nodes.length; i += fields.length) {
    const type = typeNames[snapshot.nodes[i + typeAt] as number] ?? "?";
    // Strings are grouped as strings, not by their content.
    const name = ["string", "concatenated string", "sliced string", "number"].includes(type)
      ? `(${type})`
      : (snapshot.strings[snapshot.nodes[i + nameAt] as number] ?? "?").slice(0, 60);
    const bytes = snapshot.nodes[i + sizeAt] as number;
    total += bytes;
    const key = `${type}\u0000${name}`;
    const group = groups.get(key) ?? { type, name, count: 0, bytes: 0 };
    group.count++;
    group.bytes += bytes;
    groups.set(key, group);
  }
  return { total, groups: [...groups.values()].sort((a, b) => b.bytes - a.bytes) };
}

/** A profile's function as "name file:line" (the file without its folders), or "(anonymous)". */
function frameName(frame: { functionName: string; url: string; lineNumber: number }): string {
  const file = frame.url.split("/").at(-1) ?? "";
  return `${frame.functionName || "(anonymous)"}${file ? ` ${file}:${frame.lineNumber + 1}` : ""}`;
}

/**
 * Samples the isolate's CPU for `ms` milliseconds (the DevTools profiler)
 * and sums self time by function (name and script), largest first.
 */
export async function cpuProfileSummary(
  session: InspectorSession,
  ms: number,
): Promise<{ totalMs: number; functions: { name: string; ms: number }[] }> {
  await session.send("Profiler.enable");
  await session.send("Profiler.setSamplingInterval", { interval: 1000 });
  await session.send("Profiler.start");
  await new Promise((resolve) => setTimeout(resolve, ms));
  const { profile } = await session.send<{
    profile: {
      nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
      samples: number[];
      timeDeltas: number[];
    };
  }>("Profiler.stop");
  const byNode = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfMs = new Map<string, number>();
  let totalMs = 0;
  for (const [i, id] of profile.samples.entries()) {
    const frame = byNode.get(id)?.callFrame;
    const delta = (profile.timeDeltas[i] ?? 0) / 1000;
    totalMs += delta;
    const name = frame ? frameName(frame) : "(anonymous)";
    selfMs.set(name, (selfMs.get(name) ?? 0) + delta);
  }
  const functions = [...selfMs.entries()].map(([name, ms]) => ({ name, ms })).sort((a, b) => b.ms - a.ms);
  return { totalMs, functions };
}

/** What an allocation profile found: bytes by allocating function, and by its call path (callers after "<"). */
export interface AllocationSummary {
  totalBytes: number;
  functions: { name: string; bytes: number }[];
  paths: { name: string; bytes: number }[];
}

/**
 * Starts V8's sampling heap profiler: one sample per `intervalBytes`
 * allocated, objects that young and old collections freed counted too, so
 * `stopAllocationSampling` shows what makes V8 collect and enlarge its young
 * generation, which a snapshot (live objects only) does not.
 */
export async function startAllocationSampling(session: InspectorSession, intervalBytes = 16 * 1024): Promise<void> {
  await session.send("HeapProfiler.enable");
  await session.send("HeapProfiler.startSampling", {
    samplingInterval: intervalBytes,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
}

/** Stops the sampling `startAllocationSampling` started and sums it, largest first. */
export async function stopAllocationSampling(session: InspectorSession, pathDepth = 4): Promise<AllocationSummary> {
  interface Node {
    callFrame: { functionName: string; url: string; lineNumber: number };
    selfSize: number;
    children: Node[];
  }
  const { profile } = await session.send<{ profile: { head: Node } }>("HeapProfiler.stopSampling");
  const bytes = new Map<string, number>();
  const paths = new Map<string, number>();
  let totalBytes = 0;
  const visit = (node: Node, callers: string[]) => {
    const name = frameName(node.callFrame);
    bytes.set(name, (bytes.get(name) ?? 0) + node.selfSize);
    const path = [name, ...callers.slice(0, pathDepth - 1)].join(" < ");
    if (node.selfSize > 0) paths.set(path, (paths.get(path) ?? 0) + node.selfSize);
    totalBytes += node.selfSize;
    for (const child of node.children) visit(child, [name, ...callers]);
  };
  visit(profile.head, []);
  const largest = (m: Map<string, number>) =>
    [...m.entries()].map(([name, n]) => ({ name, bytes: n })).sort((a, b) => b.bytes - a.bytes);
  return { totalBytes, functions: largest(bytes), paths: largest(paths) };
}

/** What the isolate allocates over `ms` milliseconds, garbage included (see startAllocationSampling). */
export async function allocationProfileSummary(session: InspectorSession, ms: number): Promise<AllocationSummary> {
  await startAllocationSampling(session);
  await new Promise((resolve) => setTimeout(resolve, ms));
  return stopAllocationSampling(session);
}
