import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { canPad, emptyMember, MAX_MEMBER_BYTES, MIN_MEMBER_BYTES, paddingMemberSizes } from "./gzip-padding.ts";

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
