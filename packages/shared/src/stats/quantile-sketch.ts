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
 * and answer 0. Latencies from 1 µs to a day in ms span about 1 300 buckets
 * at α = 1%; a day's sketch per path is that at most, usually a few hundred.
 */

/** The relative error the rollups state: 1%. */
export const RELATIVE_ACCURACY = 0.01;
/** Smaller values (and 0, and negatives) count as 0. */
const MIN_POSITIVE = 1e-9;

export class QuantileSketch {
  readonly gamma: number;
  private readonly logGamma: number;
  /**
   * Bucket counts, dense: `counts[i]` is bucket `offset + i`. A latency
   * sketch's buckets are a few hundred neighbours, so an array of small
   * integers takes a fraction of the memory a Map of them would.
   */
  private offset = 0;
  private counts: number[] = [];
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
    this.addToBucket(Math.ceil(Math.log(value) / this.logGamma), times);
  }

  /** Adds `times` to bucket `k`, widening the array to reach it. */
  private addToBucket(k: number, times: number): void {
    if (this.counts.length === 0) {
      this.offset = k;
      this.counts = [times];
      return;
    }
    if (k < this.offset) {
      this.counts = new Array<number>(this.offset - k).fill(0).concat(this.counts);
      this.offset = k;
    }
    const i = k - this.offset;
    while (this.counts.length <= i) this.counts.push(0);
    this.counts[i] = (this.counts[i] as number) + times;
  }

  /** Adds `other`'s counts to this sketch's; both must have the same accuracy. */
  merge(other: QuantileSketch): void {
    if (other.alpha !== this.alpha) {
      throw new RangeError(`cannot merge sketches of accuracy ${other.alpha} and ${this.alpha}`);
    }
    this.total += other.total;
    this.zeros += other.zeros;
    other.counts.forEach((n, i) => {
      if (n > 0) this.addToBucket(other.offset + i, n);
    });
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
    let k = this.offset;
    for (const [i, n] of this.counts.entries()) {
      if (n === 0) continue;
      k = this.offset + i;
      seen += n;
      if (rank < seen) break;
    }
    // The bucket at the rank (floating point aside, the last one).
    return (2 * this.gamma ** k) / (this.gamma + 1);
  }

  /**
   * The sketch as JSON, for a column of D1: the accuracy, the zero count,
   * the first bucket's index and the counts from it on, so equal sketches
   * are equal strings.
   */
  toJSON(): SketchJson {
    return { alpha: this.alpha, zeros: this.zeros, offset: this.offset, counts: [...this.counts] };
  }

  static fromJSON(json: unknown): QuantileSketch {
    const data = json as Partial<Record<keyof SketchJson, unknown>>;
    if (
      typeof data?.alpha !== "number" ||
      !Number.isInteger(data.zeros) ||
      (data.zeros as number) < 0 ||
      !Number.isInteger(data.offset) ||
      !Array.isArray(data.counts)
    ) {
      throw new TypeError("not a quantile sketch: needs alpha, zeros, offset and counts");
    }
    const sketch = new QuantileSketch(data.alpha);
    const zeros = data.zeros as number;
    if (zeros > 0) sketch.add(0, zeros);
    (data.counts as unknown[]).forEach((n, i) => {
      if (!Number.isInteger(n) || (n as number) < 0) {
        throw new TypeError(`not a quantile sketch count: ${JSON.stringify(n)} at ${i}`);
      }
      if ((n as number) > 0) {
        sketch.addToBucket((data.offset as number) + i, n as number);
        sketch.total += n as number;
      }
    });
    return sketch;
  }
}

export interface SketchJson {
  alpha: number;
  zeros: number;
  /** The index of `counts[0]`'s bucket. */
  offset: number;
  counts: number[];
}
