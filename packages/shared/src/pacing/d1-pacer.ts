/**
 * D1 runs one database's queries one at a time on its primary: every
 * millisecond an archiver statement runs there is a millisecond the web API's
 * writes wait. The pacer keeps one invocation's share of D1's time within a
 * budget, D1_MS_PER_SECOND: after each statement or batch, it waits until the
 * D1 time taken so far is paid for at that rate.
 *
 * It is a token bucket (the generic cell rate algorithm) measured in D1's own
 * time (`meta.duration`), not in statements or wall time: D1 time is what the
 * API waits behind. An invocation may start with one second's budget, and
 * may take that much at once after a pause (its other work: gzip, R2); over
 * any stretch of wall time W between the end of one statement and the end of
 * the wait after a later one, its statements took at most
 * `msPerSecond × (W / 1000 + 1)` ms of D1's time. A statement longer than
 * the budget allows is paid for afterwards, in waits of at most `maxWaitMs`
 * each (the rest is owed, and paid after the following statements), so that
 * a consumer renews its claim in time; what an invocation still owes when it
 * ends is not carried into the next one.
 */

/** The pacer's clock: the time now and a wait. Tests pass their own, so nothing waits for real. */
export interface PacerClock {
  /** Milliseconds, as Date.now(). */
  now(): number;
  sleep(ms: number): Promise<void>;
}

/** Date.now() and a timer: time passes across a timer in Workers (it is I/O), so the two agree. */
export const realClock: PacerClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** A budget of all of D1's time: pacing off. */
export const PACING_OFF = 1000;

/**
 * The longest single wait. A chunk renews its claim at pages, once a quarter
 * of LEASE_SECONDS (60 s) has passed: a wait this long between two pages
 * leaves most of the lease.
 */
export const MAX_PACING_WAIT_MS = 5000;

/** What an invocation's D1 statements took, and what the pacer asked it to wait. */
export interface PacingTotals {
  /** Statements and batches recorded (a batch is one). */
  statements: number;
  /** D1's own time for them, ms. */
  d1Ms: number;
  waits: number;
  /** The waits asked for, ms. */
  waitMs: number;
  longestWaitMs: number;
}

export class D1Pacer {
  /**
   * The wall time by which the D1 time taken so far is paid for at the
   * budget's rate. Never more than one second behind now: that second is the
   * budget the invocation may take at once.
   */
  #paidUntil: number;
  readonly totals: PacingTotals = { statements: 0, d1Ms: 0, waits: 0, waitMs: 0, longestWaitMs: 0 };

  /** `msPerSecond`: the most D1 time per second of wall time; PACING_OFF (1000) or more waits never. */
  constructor(
    readonly msPerSecond: number,
    readonly clock: PacerClock = realClock,
    readonly maxWaitMs: number = MAX_PACING_WAIT_MS,
  ) {
    this.#paidUntil = clock.now() - 1000;
  }

  get off(): boolean {
    return this.msPerSecond >= PACING_OFF;
  }

  /** Records D1's own time for one statement or batch just answered, then waits as long as the budget asks. */
  async spent(d1Ms: number): Promise<void> {
    const ms = Number.isFinite(d1Ms) && d1Ms > 0 ? d1Ms : 0;
    this.totals.statements++;
    this.totals.d1Ms += ms;
    if (this.off) return;
    const now = this.clock.now();
    this.#paidUntil = Math.max(this.#paidUntil, now - 1000) + (ms * 1000) / this.msPerSecond;
    const owed = this.#paidUntil - now;
    if (owed <= 0) return;
    const wait = Math.min(this.maxWaitMs, Math.ceil(owed));
    this.totals.waits++;
    this.totals.waitMs += wait;
    this.totals.longestWaitMs = Math.max(this.totals.longestWaitMs, wait);
    await this.clock.sleep(wait);
  }
}
