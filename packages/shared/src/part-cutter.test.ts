import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { DuckDBInstance } from "@duckdb/node-api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_MEMBER_BYTES, MIN_MEMBER_BYTES } from "./gzip-padding.ts";
import { PartCutter, PartsExhaustedError } from "./part-cutter.ts";

const PART = 128 * 1024;

/** Uploads into memory, copying: the cutter reuses its buffer. */
function memoryUpload() {
  const parts = new Map<number, Uint8Array>();
  const upload = async (partNumber: number, bytes: Uint8Array) => {
    parts.set(partNumber, bytes.slice());
    return `etag-${partNumber}`;
  };
  const object = () => Buffer.concat([...parts.entries()].sort(([a], [b]) => a - b).map(([, b]) => b));
  return { parts, upload, object };
}

/** Pseudo-random, poorly compressible lines (xorshift over base64 letters). */
function lines(seed: number, count: number): string[] {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  let x = seed * 2654435761 || 1;
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    let s = "";
    for (let j = 0; j < 120; j++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      s += alphabet[(x >>> 0) % 64];
    }
    out.push(JSON.stringify({ id: seed * 100_000 + i, v: s }));
  }
  return out;
}

/** Chunks written as members and cut into parts the way the archiver does. */
async function archive(chunks: string[][], partSize = PART) {
  const store = memoryUpload();
  const cutters: PartCutter[] = [];
  for (const [index, chunk] of chunks.entries()) {
    const cutter = new PartCutter({ partSize, firstPart: index * 100 + 1, maxParts: 100, upload: store.upload });
    await cutter.write(gzipSync(`${chunk.join("\n")}\n`));
    await cutter.finish(index === chunks.length - 1);
    cutters.push(cutter);
  }
  return { ...store, cutters };
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "part-cutter-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function duckdbLines(bytes: Buffer): Promise<string[]> {
  const file = join(dir, `${Math.random().toString(36).slice(2)}.jsonl.gz`);
  await writeFile(file, bytes);
  const db = await DuckDBInstance.create(":memory:");
  const conn = await db.connect();
  try {
    const reader = await conn.runAndReadAll(
      `SELECT to_json(t)::VARCHAR AS line FROM read_json('${file}', format = 'newline_delimited', compression = 'gzip', columns = {id: 'BIGINT', v: 'VARCHAR'}) t ORDER BY id`,
    );
    return reader.getRowObjects().map((r) => String(r.line));
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

/**
 * A chunk whose gzip (stored blocks, so one more input byte is one more output
 * byte) leaves exactly `gap` bytes free in its last part.
 */
function chunkLeavingGap(gap: number): { lines: string[]; gzip: Buffer } {
  const base = lines(7, 100);
  const make = (pad: number) => {
    const chunk = [...base, JSON.stringify({ id: 800_000, v: "x".repeat(pad) })];
    return { lines: chunk, gzip: gzipSync(`${chunk.join("\n")}\n`, { level: 0 }) };
  };
  const s0 = make(0).gzip.byteLength;
  const delta = (((PART - gap - s0) % PART) + PART) % PART;
  for (let pad = Math.max(0, delta - 40); pad <= delta + 40; pad++) {
    const chunk = make(pad);
    if (PART - (chunk.gzip.byteLength % PART) === gap) return chunk;
  }
  throw new Error(`no chunk leaves a gap of ${gap}`);
}

describe("PartCutter", () => {
  it("makes every part but the last exactly the part size, and zlib and DuckDB read the lines back", async () => {
    const chunks = [lines(1, 2000), lines(2, 10), lines(3, 3000), lines(4, 300)];
    const { parts, object, cutters } = await archive(chunks);
    const numbers = [...parts.keys()].sort((a, b) => a - b);
    for (const n of numbers.slice(0, -1)) expect(parts.get(n)?.byteLength).toBe(PART);
    expect(parts.get(numbers.at(-1) ?? 0)?.byteLength).toBeLessThanOrEqual(PART);
    // A chunk spanning several parts, a chunk of one part, and a final short part.
    expect(cutters.map((c) => c.parts.length)).toEqual([2, 1, 3, 1]);
    // Padding only ever fills up to the end of a chunk's last part.
    for (const cutter of cutters.slice(0, -1)) expect(cutter.paddingBytes).toBeLessThan(PART + 26);

    const expected = chunks.flat();
    expect(gunzipSync(object()).toString("utf8")).toBe(`${expected.join("\n")}\n`);
    expect(await duckdbLines(object())).toEqual(expected);
  });

  // Gaps from the smallest possible padding, around the 32 KiB member limit,
  // to nearly a whole part, and the gaps no member set can fill (1–21, 23–25),
  // which spill a whole extra part of padding.
  const gaps = [
    1,
    21,
    MIN_MEMBER_BYTES,
    23,
    25,
    26,
    27,
    MAX_MEMBER_BYTES - 1,
    MAX_MEMBER_BYTES,
    MAX_MEMBER_BYTES + 1,
    MAX_MEMBER_BYTES + 25,
    MAX_MEMBER_BYTES + 26,
    2 * MAX_MEMBER_BYTES + 3,
    PART - 100,
  ];
  for (const gap of gaps) {
    it(`pads a gap of ${gap} bytes so that zlib and DuckDB read the same lines`, async () => {
      const first = chunkLeavingGap(gap);
      const last = lines(9, 40);
      const store = memoryUpload();
      const cutters = [
        new PartCutter({ partSize: PART, firstPart: 1, maxParts: 100, upload: store.upload }),
        new PartCutter({ partSize: PART, firstPart: 101, maxParts: 100, upload: store.upload }),
      ];
      await cutters[0]?.write(first.gzip);
      await cutters[0]?.finish(false);
      await cutters[1]?.write(gzipSync(`${last.join("\n")}\n`));
      await cutters[1]?.finish(true);
      const { parts, object } = store;
      const chunks = [first.lines, last];
      const expectedPadding = gap < MIN_MEMBER_BYTES || (gap > MIN_MEMBER_BYTES && gap < 26) ? gap + PART : gap;
      expect(cutters[0]?.paddingBytes).toBe(expectedPadding);
      const firstChunkParts = [...parts.keys()].filter((n) => n <= 100);
      for (const n of firstChunkParts) expect(parts.get(n)?.byteLength).toBe(PART);
      const expected = chunks.flat();
      expect(gunzipSync(object()).toString("utf8")).toBe(`${expected.join("\n")}\n`);
      expect(await duckdbLines(object())).toEqual(expected);
    });
  }

  it("uploads nothing for a chunk that wrote nothing", async () => {
    const store = memoryUpload();
    const cutter = new PartCutter({ partSize: PART, firstPart: 1, maxParts: 3, upload: store.upload });
    expect(await cutter.finish(false)).toEqual([]);
    expect(store.parts.size).toBe(0);
  });

  it("refuses to go past its reserved part numbers", async () => {
    const store = memoryUpload();
    const cutter = new PartCutter({ partSize: PART, firstPart: 11, maxParts: 2, upload: store.upload });
    await cutter.write(new Uint8Array(2 * PART));
    await expect(cutter.write(new Uint8Array(PART))).rejects.toBeInstanceOf(PartsExhaustedError);
    expect([...store.parts.keys()]).toEqual([11, 12]);
  });
});
