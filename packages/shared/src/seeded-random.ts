/**
 * Deterministic pseudo-random numbers in [0, 1) from a seed (xorshift32), so
 * a test that fails sees the same data again, and a seed replays it
 * (apps/producer/test/randomized.test.ts prints its seed).
 */
export function seededRandom(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}
