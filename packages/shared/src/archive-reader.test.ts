import { describe, expect, it } from "vitest";
import { ArchiveReadError, lineWindows } from "./archive-reader.ts";

const utf8 = new TextEncoder();
const text = new TextDecoder();

/** Lines of 1 to `longest` characters, some of them multi-byte (xorshift, so every run is the same). */
function randomLines(count: number, longest: number, seed = 7): string[] {
  let x = seed;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
  return Array.from({ length: count }, (_, i) => {
    const length = 1 + Math.floor(next() * longest);
    return `${i}:${"aé€".repeat(length).slice(0, length)}`;
  });
}

/** `bytes` as pieces of 1 to `largest` bytes. */
async function* pieces(bytes: Uint8Array, largest: number, seed = 3): AsyncGenerator<Uint8Array> {
  let x = seed;
  for (let at = 0; at < bytes.byteLength; ) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const size = 1 + (x % largest);
    yield bytes.slice(at, at + size);
    at += size;
  }
}

async function windowsOf(bytes: Uint8Array, largestPiece: number, maxLines: number, maxBytes: number) {
  const out: { text: string; bytes: number; lines: number }[] = [];
  for await (const w of lineWindows(pieces(bytes, largestPiece), { maxLines, maxBytes, label: "test" })) {
    out.push({ text: text.decode(w.bytes), bytes: w.bytes.byteLength, lines: w.lines });
  }
  return out;
}

describe("lineWindows", () => {
  for (const [largestPiece, maxLines, maxBytes] of [
    [1, 3, 50],
    [7, 5, 200],
    [4096, 50, 1000],
    [100_000, 1000, 10_000],
  ] as const) {
    it(`cuts whole lines, as full as the bounds allow (pieces up to ${largestPiece} B, ${maxLines} lines, ${maxBytes} B)`, async () => {
      const lines = randomLines(2000, 80);
      const windows = await windowsOf(utf8.encode(`${lines.join("\n")}\n`), largestPiece, maxLines, maxBytes);

      // Together, the windows are the lines, in order, each once.
      expect(windows.flatMap((w) => w.text.split("\n"))).toEqual(lines);
      let taken = 0;
      for (const w of windows) {
        expect(w.lines).toBe(w.text.split("\n").length);
        expect(w.lines).toBeLessThanOrEqual(maxLines);
        // Only a line longer than the bound comes in a window over it, alone.
        if (w.lines > 1) expect(w.bytes).toBeLessThanOrEqual(maxBytes);
        taken += w.lines;
        // Full: the next line would break a bound.
        const following = lines[taken];
        if (following !== undefined) {
          const wouldBe = w.bytes + 1 + utf8.encode(following).byteLength;
          expect(w.lines === maxLines || wouldBe > maxBytes).toBe(true);
        }
      }
    });
  }

  it("gives a line longer than the byte bound a window of its own", async () => {
    const lines = ["short", "x".repeat(500), "also short", "y".repeat(300)];
    const windows = await windowsOf(utf8.encode(`${lines.join("\n")}\n`), 64, 10, 100);
    expect(windows.map((w) => w.text)).toEqual(lines);
  });

  it("fails on bytes after the last newline, and yields nothing for no bytes", async () => {
    await expect(windowsOf(utf8.encode("a\nb\nno newline"), 3, 10, 100)).rejects.toThrow(ArchiveReadError);
    await expect(windowsOf(utf8.encode("a\nb\nno newline"), 3, 10, 100)).rejects.toThrow(
      "test does not end with a newline",
    );
    expect(await windowsOf(new Uint8Array(0), 3, 10, 100)).toEqual([]);
  });
});
