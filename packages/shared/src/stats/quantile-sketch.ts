/**
 * A mergeable quantile sketch for latencies (issue "Path statistics that
 * outlive the rows"): the DDSketch idea (Masson, Rim, Lee, VLDB 2019) in a
 * few lines. A value x > 0 is counted in bucket k = ceil(log_γ x), with
 * γ = (1 + α) / (1 − α); every value of bucket k lies in (γ^(k−1), γ^k], and
 * the bucket answers 2γ^k / (γ + 1), within a relative error α of each of
 * them. So a quantile is answered within α of the exact value at its rank,
 * whatever the data's shape.
 *
 * Merging adds bucket counts: integers, so any order of merges gives the
 * same sketch, exactly. Values ≤ MIN_POSITIVE (0 included) are counted apart
 * and answer 0. Latencies from 1 µs to a day in ms take about 1 300 buckets
 * at α = 1%; a day's sketch per path is that at most, usually a few hundred.
 */

/** The relative error the rollups state: 1%. */
export const RELATIVE_ACCURACY = 0.01;
/** Smaller values (and 0, and negatives) count as 0. */
const MIN_POSITIVE = 1e-9;

export class QuantileSketch {
  readonly gamma: number;
  private readonly logGamma: number;
  private readonly buckets = new Map<number, number>();
  private zeros = 0;
  private total = 0;

  constructor(readonly alpha = RELATIVE_ACCURACY) {
    if (!(alpha > 0 && alpha < 1)) throw new RangeError(`relative accuracy must be in (0, 1), got ${alpha}`);
    this.gamma = (1 + alpha) / (1 - alpha);
    this.logGamma = Math.log(this.gamma);
  }

  get count(): number {
    return this.total;
  }

  /** Counts `value` (`times` times). NaN is refused: a latency is a number. */
  add(value: number, times = 1): void {
    if (Number.isNaN(value)) throw new RangeError("a sketch counts numbers, not NaN");
    if (!Number.isInteger(times) || times < 1) throw new RangeError(`times must be a positive integer, got ${times}`);
    this.total += times;
    if (value <= MIN_POSITIVE) {
      this.zeros += times;
      return;
    }
    const k = Math.ceil(Math.log(value) / this.logGamma);
    this.buckets.set(k, (this.buckets.get(k) ?? 0) + times);
  }

  /** Adds `other`'s counts to this sketch's; both must have the same accuracy. */
  merge(other: QuantileSketch): void {
    if (other.alpha !== this.alpha) {
      throw new RangeError(`cannot merge sketches of accuracy ${other.alpha} and ${this.alpha}`);
    }
    this.total += other.total;
    this.zeros += other.zeros;
    for (const [k, n] of other.buckets) this.buckets.set(k, (this.buckets.get(k) ?? 0) + n);
  }

  /**
   * The value at rank q·(count − 1) (0 ≤ q ≤ 1), within α of the exact one:
   * the median is q = 0.5, p99 q = 0.99. NaN for an empty sketch.
   */
  quantile(q: number): number {
    if (!(q >= 0 && q <= 1)) throw new RangeError(`a quantile is from 0 to 1, got ${q}`);
    if (this.total === 0) return Number.NaN;
    const rank = q * (this.total - 1);
    let seen = this.zeros;
    if (rank < seen) return 0;
    for (const k of [...this.buckets.keys()].sort((a, b) => a - b)) {
      seen += this.buckets.get(k) as number;
      if (rank < seen) return (2 * this.gamma ** k) / (this.gamma + 1);
    }
    // Not reached (rank < total); floating point aside, the largest bucket.
    const last = Math.max(...this.buckets.keys());
    return (2 * this.gamma ** last) / (this.gamma + 1);
  }

  /**
   * The sketch as JSON, for a column of D1: the accuracy, the zero count and
   * the buckets as [index, count] in index order, so equal sketches are equal
   * strings.
   */
  toJSON(): { alpha: number; zeros: number; buckets: [number, number][] } {
    const buckets = [...this.buckets.entries()].sort((a, b) => a[0] - b[0]);
    return { alpha: this.alpha, zeros: this.zeros, buckets };
  }

  static fromJSON(json: unknown): QuantileSketch {
    const data = json as { alpha?: unknown; zeros?: unknown; buckets?: unknown };
    if (typeof data?.alpha !== "number" || !Number.isInteger(data.zeros) || !Array.isArray(data.buckets)) {
      throw new TypeError("not a quantile sketch: needs alpha, zeros and buckets");
    }
    const sketch = new QuantileSketch(data.alpha);
    const zeros = data.zeros as number;
    if (zeros > 0) sketch.add(0, zeros);
    for (const pair of data.buckets as unknown[]) {
      const [k, n] = pair as [unknown, unknown];
      if (!Number.isInteger(k) || !Number.isInteger(n) || (n as number) < 1) {
        throw new TypeError(`not a quantile sketch bucket: ${JSON.stringify(pair)}`);
      }
      sketch.buckets.set(k as number, (sketch.buckets.get(k as number) ?? 0) + (n as number));
      sketch.total += n as number;
    }
    return sketch;
  }
}
