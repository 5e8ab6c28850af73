import { describe, expect, it } from "vitest";
import { batchesOf } from "./send-batches.ts";

describe("batchesOf", () => {
  it("keeps every message, in order, at most 100 per batch", () => {
    const messages = Array.from({ length: 250 }, (_, i) => ({ i }));
    const batches = batchesOf(messages);
    expect(batches.map((b) => b.length)).toEqual([100, 100, 50]);
    expect(batches.flat()).toEqual(messages);
  });

  it("keeps each batch under 256 KB of messages", () => {
    const messages = Array.from({ length: 30 }, (_, i) => ({ i, pad: "x".repeat(20_000) }));
    const batches = batchesOf(messages);
    for (const batch of batches) {
      expect(batch.reduce((sum, m) => sum + JSON.stringify(m).length + 100, 0)).toBeLessThanOrEqual(256 * 1024);
    }
    expect(batches.flat()).toEqual(messages);
    expect(batches.length).toBe(3);
  });
});
