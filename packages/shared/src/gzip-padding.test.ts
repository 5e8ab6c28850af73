import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  canPad,
  emptyMember,
  emptyMembersProblem,
  MAX_MEMBER_BYTES,
  MIN_MEMBER_BYTES,
  paddingMemberSizes,
} from "./gzip-padding.ts";

describe("empty gzip members", () => {
  it("decompress to nothing at every size from the smallest to the largest", () => {
    for (const size of [22, 26, 27, 1000, MAX_MEMBER_BYTES]) {
      const member = emptyMember(size);
      expect(member.byteLength).toBe(size);
      expect(gunzipSync(member).byteLength).toBe(0);
    }
  });

  it("refuse sizes no member has", () => {
    for (const size of [0, 21, 23, 24, 25, MAX_MEMBER_BYTES + 1]) expect(() => emptyMember(size)).toThrow(RangeError);
  });

  it("fill every paddable gap exactly, each member within DuckDB's limit", () => {
    for (let gap = 0; gap < 3 * MAX_MEMBER_BYTES + 100; gap += gap < 200 ? 1 : 97) {
      if (!canPad(gap)) {
        expect(gap < MIN_MEMBER_BYTES || (gap > MIN_MEMBER_BYTES && gap < 26)).toBe(true);
        continue;
      }
      const sizes = paddingMemberSizes(gap);
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(gap);
      for (const size of sizes) expect(() => emptyMember(size)).not.toThrow();
    }
  });
});

describe("checking padding read back (scrub)", () => {
  const padding = (gap: number) => Buffer.concat(paddingMemberSizes(gap).map((size) => emptyMember(size)));

  it("accepts padding as the archiver writes it, which zlib reads as nothing", () => {
    for (const gap of [0, 22, 26, 1000, MAX_MEMBER_BYTES, 3 * MAX_MEMBER_BYTES + 100]) {
      const bytes = padding(gap);
      expect(emptyMembersProblem(bytes)).toBeNull();
      if (gap > 0) expect(gunzipSync(bytes).byteLength).toBe(0);
    }
  });

  it("finds any flipped byte of a member's fixed parts, and stray or missing bytes", () => {
    const bytes = padding(2 * MAX_MEMBER_BYTES + 500);
    const second = MAX_MEMBER_BYTES; // where the second member starts
    for (const at of [0, 1, 2, 3, second, second + 10, bytes.byteLength - 1, bytes.byteLength - 7]) {
      const altered = Buffer.from(bytes);
      altered[at] = (altered[at] as number) ^ 0xff;
      expect(emptyMembersProblem(altered), `byte ${at}`).not.toBeNull();
    }
    expect(emptyMembersProblem(Buffer.concat([bytes, Buffer.alloc(5)]))).toMatch(/stray bytes/);
    expect(emptyMembersProblem(bytes.subarray(0, bytes.byteLength - 1))).not.toBeNull();
  });
});
