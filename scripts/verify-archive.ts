/**
 * `pnpm verify-archive -- <objectKey>` (the local R2 of `pnpm dev`) or
 * `pnpm verify-archive -- --file x.jsonl.gz --manifest x.manifest.json` (any
 * downloaded pair): checks an archive against its manifest from its own
 * bytes, without the Workers, and prints what it found. Exit code 0 when
 * everything matches, 1 otherwise.
 *
 * What is checked (docs/archive-format.md says why each holds):
 * - the object's size is the sum of its parts', and every part but the last
 *   has the manifest's `partSize` bytes (R2's rule for multipart objects);
 * - each chunk's gzip member, at the offset its parts give, decompresses to
 *   exactly its `rows` lines, whose bytes hash to its `sha256`, with ids
 *   ascending inside [rowidLo, rowidHi];
 * - the whole object, read as concatenated gzip members (padding included),
 *   decompresses to exactly the manifest's `rows` lines and `rawBytes` bytes.
 * Memory stays bounded: everything is streamed.
 *
 * `pnpm verify-archive -- --day <folder>` checks every archive of one day
 * downloaded into a folder (`<runId>.jsonl.gz` beside `<runId>.manifest.json`)
 * as above, then the day as a whole (docs/archive-format.md, "One row, one
 * current content"): two archives' id ranges overlap only where the later one
 * lists the earlier in `supersedes`, and it counts each id once, with its
 * latest content. Memory: the ids of rows that supersede others.
 */
import { createHash } from "node:crypto";
import { createReadStream, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createGunzip } from "node:zlib";
import { cliArgs, fetchLocalObject } from "./lib.ts";

interface ManifestPart {
  partNumber: number;
  size: number;
}
interface ManifestChunk {
  index: number;
  rowidLo: number;
  rowidHi: number;
  rows: number;
  gzBytes: number;
  parts: ManifestPart[];
  sha256: string;
}
export interface ArchiveManifest {
  version: number;
  /** The column every line holds its id in; "id" in manifests written before it existed. */
  idColumn?: string;
  date: string;
  runId: string;
  completedAt?: string;
  supersedes?: { runId: string; rowidLo: number; rowidHi: number }[];
  partSize: number;
  rows: number;
  rawBytes: number;
  objectBytes: number;
  columns: string[];
  chunks: ManifestChunk[];
}

export interface Finding {
  what: string;
  ok: boolean;
  detail: string;
}

/** Lines, bytes and SHA-256 of a decompressed stream, checking ids as it goes. */
async function readLines(
  stream: NodeJS.ReadableStream,
  check?: { lo: number; hi: number; idColumn: string },
): Promise<{ lines: number; bytes: number; sha256: string; idProblem: string | null }> {
  const hash = createHash("sha256");
  let lines = 0;
  let bytes = 0;
  let rest = "";
  let lastId = Number.NEGATIVE_INFINITY;
  let idProblem: string | null = null;
  for await (const piece of stream.pipe(createGunzip())) {
    const buffer = piece as Buffer;
    hash.update(buffer);
    bytes += buffer.byteLength;
    const text = rest + buffer.toString("utf8");
    const parts = text.split("\n");
    rest = parts.pop() ?? "";
    lines += parts.length;
    if (check && !idProblem) {
      for (const line of parts) {
        const id = (JSON.parse(line) as Record<string, unknown>)[check.idColumn];
        if (typeof id !== "number" || id <= lastId || id < check.lo || id > check.hi) {
          idProblem = `line ${lines - parts.length + parts.indexOf(line) + 1} has id ${String(id)}`;
          break;
        }
        lastId = id;
      }
    }
  }
  if (rest !== "") idProblem ??= "the last line has no trailing newline";
  return { lines, bytes, sha256: hash.digest("hex"), idProblem };
}

/** Checks `file` (the object's bytes) against `manifest`. */
export async function verifyArchive(file: string, manifest: ArchiveManifest): Promise<Finding[]> {
  const findings: Finding[] = [];
  const add = (what: string, ok: boolean, detail: string) => findings.push({ what, ok, detail });

  const parts = manifest.chunks.flatMap((c) => c.parts).sort((a, b) => a.partNumber - b.partNumber);
  const size = statSync(file).size;
  const partBytes = parts.reduce((sum, p) => sum + p.size, 0);
  add(
    "object size",
    size === partBytes && size === manifest.objectBytes,
    `${size} bytes; parts ${partBytes}; manifest ${manifest.objectBytes}`,
  );
  const unequal = parts.slice(0, -1).filter((p) => p.size !== manifest.partSize);
  add(
    "part sizes",
    unequal.length === 0 && (parts.at(-1)?.size ?? 0) <= manifest.partSize,
    unequal.length === 0
      ? `${parts.length} parts of ${manifest.partSize} bytes, the last ${parts.at(-1)?.size ?? 0}`
      : `parts ${unequal.map((p) => `${p.partNumber} (${p.size} bytes)`).join(", ")} are not ${manifest.partSize} bytes`,
  );

  const offsets = new Map<number, number>();
  let offset = 0;
  for (const part of parts) {
    offsets.set(part.partNumber, offset);
    offset += part.size;
  }
  for (const chunk of manifest.chunks) {
    const what = `chunk ${chunk.index} (ids ${chunk.rowidLo}..${chunk.rowidHi})`;
    if (chunk.rows === 0) {
      add(what, chunk.gzBytes === 0, "archived no rows");
      continue;
    }
    const first = Math.min(...chunk.parts.map((p) => p.partNumber));
    const start = offsets.get(first) ?? 0;
    try {
      const read = await readLines(createReadStream(file, { start, end: start + chunk.gzBytes - 1 }), {
        lo: chunk.rowidLo,
        hi: chunk.rowidHi,
        idColumn: manifest.idColumn ?? "id",
      });
      const problems = [
        read.lines === chunk.rows ? null : `${read.lines} lines, manifest ${chunk.rows}`,
        read.sha256 === chunk.sha256 ? null : "SHA-256 differs",
        read.idProblem,
      ].filter(Boolean);
      add(
        what,
        problems.length === 0,
        problems.length === 0 ? `${read.lines} rows, SHA-256 equal` : problems.join("; "),
      );
    } catch (error) {
      add(what, false, `its gzip member does not decompress: ${error instanceof Error ? error.message : error}`);
    }
  }

  try {
    const whole = await readLines(createReadStream(file));
    add(
      "whole object",
      whole.lines === manifest.rows && whole.bytes === manifest.rawBytes,
      `${whole.lines} lines and ${whole.bytes} bytes of JSON Lines; manifest ${manifest.rows} rows, ${manifest.rawBytes} bytes`,
    );
  } catch (error) {
    add("whole object", false, `does not decompress: ${error instanceof Error ? error.message : error}`);
  }
  return findings;
}

/** The ids of an archive's lines, in order, streamed. */
async function* archiveIds(file: string, idColumn: string): AsyncGenerator<number> {
  let rest = "";
  for await (const piece of createReadStream(file).pipe(createGunzip())) {
    const parts = (rest + (piece as Buffer).toString("utf8")).split("\n");
    rest = parts.pop() ?? "";
    for (const line of parts) yield (JSON.parse(line) as Record<string, number>)[idColumn] as number;
  }
}

export interface DayArchive {
  file: string;
  manifest: ArchiveManifest;
}

/**
 * A day's archives as one: each checked against its manifest, their id
 * ranges overlapping only where the later lists the earlier in
 * `supersedes`, and the day's rows counted once per id.
 */
export async function verifyDay(
  archives: DayArchive[],
): Promise<{ findings: Finding[]; rows: number; superseded: number; current: number }> {
  const findings: Finding[] = [];
  const add = (what: string, ok: boolean, detail: string) => findings.push({ what, ok, detail });
  // Runs of a day never overlap in time: commit order is completedAt order.
  const ordered = [...archives].sort((a, b) =>
    (a.manifest.completedAt ?? "").localeCompare(b.manifest.completedAt ?? ""),
  );
  for (const { file, manifest } of ordered) {
    for (const f of await verifyArchive(file, manifest)) {
      add(`run ${manifest.runId}: ${f.what}`, f.ok, f.detail);
    }
  }
  // Every overlap of two archives' ranges must be listed by the later one.
  for (const [i, later] of ordered.entries()) {
    for (const earlier of ordered.slice(0, i)) {
      for (const a of later.manifest.chunks.filter((c) => c.rows > 0)) {
        for (const b of earlier.manifest.chunks.filter((c) => c.rows > 0)) {
          const lo = Math.max(a.rowidLo, b.rowidLo);
          const hi = Math.min(a.rowidHi, b.rowidHi);
          if (lo > hi) continue;
          const listed = (later.manifest.supersedes ?? []).some(
            (s) => s.runId === earlier.manifest.runId && s.rowidLo <= lo && s.rowidHi >= hi,
          );
          add(
            `ranges of runs ${earlier.manifest.runId} and ${later.manifest.runId}`,
            listed,
            listed
              ? `ids ${lo}..${hi}: the later supersedes the earlier`
              : `ids ${lo}..${hi} overlap, not listed in supersedes`,
          );
        }
      }
    }
  }
  // Newest first: an id seen in a later archive's superseding range is an older content in the earlier ones.
  const newer = new Map<string, Set<number>>(); // earlier runId -> ids later runs hold in ranges they supersede
  let rows = 0;
  let superseded = 0;
  for (const { file, manifest } of [...ordered].reverse()) {
    const skip = newer.get(manifest.runId) ?? new Set<number>();
    const ranges = manifest.supersedes ?? [];
    for await (const id of archiveIds(file, manifest.idColumn ?? "id")) {
      rows++;
      if (skip.has(id)) {
        superseded++;
        continue;
      }
      for (const s of ranges) {
        if (id < s.rowidLo || id > s.rowidHi) continue;
        const set = newer.get(s.runId) ?? new Set<number>();
        set.add(id);
        newer.set(s.runId, set);
      }
    }
  }
  return { findings, rows, superseded, current: rows - superseded };
}

async function verifyDayFolder(folder: string): Promise<number> {
  const archives = readdirSync(folder)
    .filter((f) => f.endsWith(".jsonl.gz"))
    .map((f) => ({
      file: join(folder, f),
      manifest: JSON.parse(
        readFileSync(join(folder, f.replace(/\.jsonl\.gz$/, ".manifest.json")), "utf8"),
      ) as ArchiveManifest,
    }));
  if (archives.length === 0) throw new Error(`no <runId>.jsonl.gz in ${folder}`);
  const dates = new Set(archives.map((a) => a.manifest.date));
  if (dates.size > 1) throw new Error(`${folder} holds archives of several days: ${[...dates].join(", ")}`);
  const { findings, rows, superseded, current } = await verifyDay(archives);
  for (const f of findings) console.log(`  ${f.ok ? "ok  " : "DIFF"} ${f.what}: ${f.detail}`);
  console.log(
    `day ${[...dates][0]}: ${archives.length} archive(s), ${rows} rows, ${superseded} superseded by later runs, ${current} current rows (each id once)`,
  );
  const bad = findings.filter((f) => !f.ok).length;
  console.log(bad === 0 ? "every archive matches its manifest" : `${bad} check(s) differ`);
  return bad === 0 ? 0 : 1;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: cliArgs(),
    options: { file: { type: "string" }, manifest: { type: "string" }, day: { type: "string" } },
    allowPositionals: true,
  });
  if (values.day) return verifyDayFolder(values.day);
  let file = values.file;
  let manifestFile = values.manifest;
  let temp: string | null = null;
  if (positionals.length === 1 && !file && !manifestFile) {
    const key = positionals[0] as string;
    if (!key.endsWith(".jsonl.gz")) throw new Error(`not an archive object key (…/<runId>.jsonl.gz): ${key}`);
    temp = mkdtempSync(join(tmpdir(), "verify-archive-"));
    file = join(temp, "object.jsonl.gz");
    manifestFile = join(temp, "manifest.json");
    await fetchLocalObject(key, file);
    await fetchLocalObject(key.replace(/\.jsonl\.gz$/, ".manifest.json"), manifestFile);
  } else if (!file || !manifestFile || positionals.length > 0) {
    throw new Error(
      "usage: pnpm verify-archive -- <objectKey> | --file x.jsonl.gz --manifest x.manifest.json | --day <folder>",
    );
  }
  try {
    const manifest = JSON.parse(readFileSync(manifestFile, "utf8")) as ArchiveManifest;
    console.log(
      `archive of ${manifest.date}, run ${manifest.runId}: ${manifest.rows} rows in ${manifest.chunks.length} chunk(s)`,
    );
    const findings = await verifyArchive(file, manifest);
    for (const f of findings) console.log(`  ${f.ok ? "ok  " : "DIFF"} ${f.what}: ${f.detail}`);
    const bad = findings.filter((f) => !f.ok).length;
    console.log(bad === 0 ? "the archive matches its manifest" : `${bad} check(s) differ`);
    return bad === 0 ? 0 : 1;
  } finally {
    if (temp) rmSync(temp, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (error) => {
      console.error(`verify-archive: ${error instanceof Error ? error.message : error}`);
      process.exitCode = 1;
    },
  );
}
