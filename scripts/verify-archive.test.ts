import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { emptyMember, paddingMemberSizes } from "../packages/shared/src/gzip-padding.ts";
import { type ArchiveManifest, verifyArchive } from "./verify-archive.ts";

/**
 * An archive laid out as the archiver writes one: chunk 0's gzip member
 * padded with empty members to a whole part, then chunk 1's member as the
 * last part; and its manifest.
 */
const PART_SIZE = 64 * 1024;
const dir = mkdtempSync(join(tmpdir(), "verify-archive-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function lines(from: number, to: number): Buffer {
  let text = "";
  for (let id = from; id <= to; id++)
    text += `${JSON.stringify({ id, event_date: "2026-05-01", path: `/p/${id % 7}` })}\n`;
  return Buffer.from(text);
}

function build(): { object: Buffer; manifest: ArchiveManifest } {
  const raw = [lines(1, 1000), lines(1001, 1500)];
  const members = raw.map((r) => gzipSync(r));
  const padding = paddingMemberSizes(PART_SIZE - (members[0] as Buffer).byteLength).map((size) => emptyMember(size));
  const object = Buffer.concat([members[0] as Buffer, ...padding, members[1] as Buffer]);
  const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
  return {
    object,
    manifest: {
      version: 1,
      date: "2026-05-01",
      runId: "test-run",
      partSize: PART_SIZE,
      rows: 1500,
      rawBytes: (raw[0] as Buffer).byteLength + (raw[1] as Buffer).byteLength,
      objectBytes: object.byteLength,
      columns: ["id", "event_date", "path"],
      chunks: [
        {
          index: 0,
          rowidLo: 1,
          rowidHi: 1000,
          rows: 1000,
          gzBytes: (members[0] as Buffer).byteLength,
          parts: [{ partNumber: 1, size: PART_SIZE }],
          sha256: sha(raw[0] as Buffer),
        },
        {
          index: 1,
          rowidLo: 1001,
          rowidHi: 2000,
          rows: 500,
          gzBytes: (members[1] as Buffer).byteLength,
          parts: [{ partNumber: 5001, size: (members[1] as Buffer).byteLength }],
          sha256: sha(raw[1] as Buffer),
        },
      ],
    },
  };
}

async function check(object: Buffer, manifest: ArchiveManifest) {
  const file = join(dir, `${Math.random()}.jsonl.gz`);
  writeFileSync(file, object);
  const findings = await verifyArchive(file, manifest);
  return Object.fromEntries(findings.map((f) => [f.what.split(" (")[0], f.ok]));
}

describe("verify-archive", () => {
  it("passes an archive that matches its manifest", async () => {
    const { object, manifest } = build();
    expect(await check(object, manifest)).toEqual({
      "object size": true,
      "part sizes": true,
      "chunk 0": true,
      "chunk 1": true,
      "whole object": true,
    });
  });

  it("finds a byte flipped inside a chunk's member", async () => {
    const { object, manifest } = build();
    object[200] = (object[200] as number) ^ 0xff;
    expect(await check(object, manifest)).toMatchObject({ "chunk 0": false, "chunk 1": true, "whole object": false });
  });

  it("finds rows, checksums and ids that differ from the manifest", async () => {
    const { object, manifest } = build();
    const chunk1 = manifest.chunks[1] as ArchiveManifest["chunks"][number];
    expect(
      await check(object, { ...manifest, chunks: [manifest.chunks[0], { ...chunk1, rows: 499 }] as never }),
    ).toMatchObject({
      "chunk 1": false,
    });
    expect(
      await check(object, { ...manifest, chunks: [manifest.chunks[0], { ...chunk1, rowidHi: 1400 }] as never }),
    ).toMatchObject({ "chunk 1": false });
    expect(await check(object, { ...manifest, rows: 1501 })).toMatchObject({ "whole object": false });
  });

  it("finds parts that break R2's equal-size rule and an object of the wrong size", async () => {
    const { object, manifest } = build();
    expect(await check(object, { ...manifest, partSize: PART_SIZE + 1024 })).toMatchObject({ "part sizes": false });
    expect(await check(object.subarray(0, object.byteLength - 10), manifest)).toMatchObject({
      "object size": false,
      "chunk 1": false,
    });
  });
});

describe("verify-archive on the command line", () => {
  /** Runs the CLI on a pair of files; its exit code and what it printed. */
  function cli(object: Buffer, manifest: ArchiveManifest): { code: number | null; output: string } {
    const file = join(dir, `${Math.random()}.jsonl.gz`);
    const manifestFile = `${file}.manifest.json`;
    writeFileSync(file, object);
    writeFileSync(manifestFile, JSON.stringify(manifest));
    const result = spawnSync(
      process.execPath,
      [
        "--no-warnings=ExperimentalWarning",
        join(import.meta.dirname, "verify-archive.ts"),
        "--file",
        file,
        "--manifest",
        manifestFile,
      ],
      { encoding: "utf8" },
    );
    return { code: result.status, output: result.stdout + result.stderr };
  }

  it("accepts a good archive with exit code 0", () => {
    const { object, manifest } = build();
    const { code, output } = cli(object, manifest);
    expect(output).toContain("the archive matches its manifest");
    expect(code).toBe(0);
  });

  it("rejects a truncated archive, one with a part missing, and one with a changed row, exit code 1", () => {
    const { object, manifest } = build();
    const truncated = cli(object.subarray(0, object.byteLength - 100), manifest);
    expect(truncated.code).toBe(1);
    expect(truncated.output).toMatch(/DIFF object size/);

    const withoutLastPart = cli(object.subarray(0, PART_SIZE), manifest);
    expect(withoutLastPart.code).toBe(1);
    expect(withoutLastPart.output).toMatch(/DIFF chunk 1 .*does not decompress|DIFF chunk 1/);

    // A row changed and the member recompressed: valid gzip, but not the archived rows.
    const raw = gunzipSync(object.subarray(PART_SIZE)).toString("utf8").replace('"/p/3"', '"/p/9"');
    const changed = cli(Buffer.concat([object.subarray(0, PART_SIZE), gzipSync(raw)]), {
      ...manifest,
      objectBytes: PART_SIZE + gzipSync(raw).byteLength,
      chunks: [
        manifest.chunks[0],
        {
          ...(manifest.chunks[1] as ArchiveManifest["chunks"][number]),
          gzBytes: gzipSync(raw).byteLength,
          parts: [{ partNumber: 5001, size: gzipSync(raw).byteLength }],
        },
      ] as never,
    });
    expect(changed.code).toBe(1);
    expect(changed.output).toMatch(/DIFF chunk 1 .*SHA-256 differs/);
  });
});

describe("verify-archive over a day's archives", () => {
  /** A one-chunk archive of `rows` (id, path) completed at `completedAt`, written to `folder`. */
  function archive(
    folder: string,
    runId: string,
    rows: [number, string][],
    completedAt: string,
    supersedes?: ArchiveManifest["supersedes"],
  ) {
    const raw = Buffer.from(
      rows.map(([id, path]) => `${JSON.stringify({ id, event_date: "2026-05-01", path })}\n`).join(""),
    );
    const object = gzipSync(raw);
    const manifest: ArchiveManifest = {
      version: 1,
      date: "2026-05-01",
      runId,
      completedAt,
      ...(supersedes ? { supersedes } : {}),
      partSize: PART_SIZE,
      rows: rows.length,
      rawBytes: raw.byteLength,
      objectBytes: object.byteLength,
      columns: ["id", "event_date", "path"],
      chunks: [
        {
          index: 0,
          rowidLo: rows[0]?.[0] as number,
          rowidHi: rows.at(-1)?.[0] as number,
          rows: rows.length,
          gzBytes: object.byteLength,
          parts: [{ partNumber: 1, size: object.byteLength }],
          sha256: createHash("sha256").update(raw).digest("hex"),
        },
      ],
    };
    writeFileSync(join(folder, `${runId}.jsonl.gz`), object);
    writeFileSync(join(folder, `${runId}.manifest.json`), JSON.stringify(manifest));
  }
  const first = Array.from({ length: 10 }, (_, i): [number, string] => [i + 1, "/a"]);

  function cliDay(folder: string): { code: number | null; output: string } {
    const result = spawnSync(
      process.execPath,
      ["--no-warnings=ExperimentalWarning", join(import.meta.dirname, "verify-archive.ts"), "--day", folder],
      { encoding: "utf8" },
    );
    return { code: result.status, output: result.stdout + result.stderr };
  }

  it("counts each id once, with the content of the latest run that holds it", async () => {
    const folder = mkdtempSync(join(dir, "day-"));
    archive(folder, "run-one", first, "2026-05-02T01:00:00.000Z");
    archive(
      folder,
      "run-two",
      [
        [3, "/changed"],
        [4, "/changed"],
        [12, "/late"],
      ],
      "2026-05-02T02:00:00.000Z",
      [{ runId: "run-one", rowidLo: 3, rowidHi: 10 }],
    );
    const { code, output } = cliDay(folder);
    expect(output).toContain("2 archive(s), 13 rows, 2 superseded by later runs, 11 current rows (each id once)");
    expect(code).toBe(0);
  });

  it("finds two archives holding the same ids when the later does not say it supersedes the earlier", async () => {
    const folder = mkdtempSync(join(dir, "day-"));
    archive(folder, "run-one", first, "2026-05-02T01:00:00.000Z");
    archive(folder, "run-two", [[3, "/changed"]], "2026-05-02T02:00:00.000Z");
    const { code, output } = cliDay(folder);
    expect(output).toMatch(/DIFF ranges of runs run-one and run-two: ids 3\.\.3 overlap, not listed in supersedes/);
    expect(code).toBe(1);
  });
});
