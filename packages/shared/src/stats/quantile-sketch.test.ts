import { describe, expect, it } from "vitest";
import { seededRandom } from "../seeded-random.ts";
import { QuantileSketch, RELATIVE_ACCURACY } from "./quantile-sketch.ts";

/** Deterministic uniform numbers in (0, 1): never 0, whose logarithm the samples take. */
function uniform(seed: number): () => number {
  const next = seededRandom(seed);
  return () => next() + 2 ** -33;
}

/** Skewed latencies: log-normal around 40 ms with a Pareto tail (a few requests take seconds), and zeros. */
function latencies(n: number, seed: number): number[] {
  const next = uniform(seed);
  return Array.from({ length: n }, (_, i) => {
    if (i % 97 === 0) return 0;
    if (next() < 0.02) return 1000 * next() ** -1.5; // heavy tail
    const normal = Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
    return Math.exp(Math.log(40) + 0.8 * normal);
  });
}

/** The exact value at rank q·(n − 1), as the sketch defines its quantiles. */
function exact(sorted: readonly number[], q: number): number {
  return sorted[Math.floor(q * (sorted.length - 1))] as number;
}

const QUANTILES = [0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1];

describe("QuantileSketch", () => {
  it("answers every quantile of skewed data within 1% of the exact value", () => {
    const values = latencies(100_000, 7);
    const sketch = new QuantileSketch();
    for (const v of values) sketch.add(v);
    const sorted = [...values].sort((a, b) => a - b);
    expect(sketch.count).toBe(values.length);
    for (const q of QUANTILES) {
      const want = exact(sorted, q);
      const got = sketch.quantile(q);
      // The stated bound, with room for floating point only.
      expect(Math.abs(got - want)).toBeLessThanOrEqual(RELATIVE_ACCURACY * want * (1 + 1e-9));
    }
  });

  it("merges in any order into the same sketch, equal to one sketch of all the values", () => {
    const parts = [latencies(5000, 1), latencies(20_000, 2), latencies(300, 3), latencies(9000, 4)];
    const sketchOf = (values: number[]) => {
      const s = new QuantileSketch();
      for (const v of values) s.add(v);
      return s;
    };
    const merged = (order: number[]) => {
      const s = new QuantileSketch();
      for (const i of order) s.merge(sketchOf(parts[i] as number[]));
      return JSON.stringify(s);
    };
    const all = JSON.stringify(sketchOf(parts.flat()));
    expect(merged([0, 1, 2, 3])).toBe(all);
    expect(merged([3, 1, 0, 2])).toBe(all);
    // Merging merged sketches (a day's runs, then days) is the same too.
    const left = sketchOf(parts[2] as number[]);
    left.merge(sketchOf(parts[0] as number[]));
    const right = sketchOf(parts[3] as number[]);
    right.merge(sketchOf(parts[1] as number[]));
    right.merge(left);
    expect(JSON.stringify(right)).toBe(all);
  });

  it("goes to JSON and back unchanged, and refuses what is not a sketch", () => {
    const sketch = new QuantileSketch();
    for (const v of latencies(2000, 9)) sketch.add(v);
    const back = QuantileSketch.fromJSON(JSON.parse(JSON.stringify(sketch)));
    expect(JSON.stringify(back)).toBe(JSON.stringify(sketch));
    expect(back.count).toBe(2000);
    expect(back.quantile(0.99)).toBe(sketch.quantile(0.99));
    expect(() => QuantileSketch.fromJSON({ alpha: 0.01, zeros: 0, offset: 3, counts: [1, -1] })).toThrow(TypeError);
    expect(() => QuantileSketch.fromJSON({ zeros: 0, offset: 0, counts: [] })).toThrow(TypeError);
  });

  it("counts zeros apart, answers NaN when empty, and stays small over a wide range", () => {
    const sketch = new QuantileSketch();
    expect(sketch.quantile(0.5)).toBeNaN();
    sketch.add(0, 3);
    sketch.add(5);
    expect(sketch.quantile(0)).toBe(0);
    expect(sketch.quantile(1)).toBeCloseTo(5, 1);
    // One value per power of 1.001 from 1 µs to a day, in ms: about 1 300 buckets at 1%.
    const wide = new QuantileSketch();
    for (let v = 1e-3; v < 86_400_000; v *= 1.001) wide.add(v);
    expect(wide.toJSON().counts.length).toBeLessThan(1300);
    expect(() => sketch.add(Number.NaN)).toThrow(RangeError);
    expect(() => sketch.merge(new QuantileSketch(0.02))).toThrow(RangeError);
  });
});
