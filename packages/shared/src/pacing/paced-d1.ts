import { D1Pacer } from "./d1-pacer.ts";

/*
 * The parts of D1's binding the wrapper touches, by shape: shared code is
 * type-checked under Node as well, where Workers' types are absent.
 */
type Answer = { meta: { duration?: number } };
type Rows = Answer & { results: Record<string, unknown>[] };
interface Statement {
  bind(...values: unknown[]): Statement;
  all(): Promise<Rows>;
  run(): Promise<Answer>;
}
interface Binding {
  prepare(query: string): Statement;
  batch(statements: Statement[]): Promise<Answer[]>;
  exec(query: string): Promise<{ duration: number }>;
}

/**
 * `db` for one invocation, paced: every statement and batch run through it
 * reports D1's own time (`meta.duration`) to `pacer` and returns once the
 * pacer's wait is over. `first()` is read through `all()` (D1 answers both
 * from the same query, but `first()` drops the time); `raw()` and sessions,
 * which the archiver does not use and which do not report D1's time, are
 * refused rather than left unpaced.
 */
export function pacedD1<Db extends object>(db: Db, pacer: D1Pacer): Db {
  const native = db as unknown as Binding;
  /** The statement of `native` behind each paced one, for batches. */
  const unwrapped = new WeakMap<object, Statement>();
  const paced = async <T extends Answer>(answer: Promise<T>): Promise<T> => {
    const result = await answer;
    await pacer.spent(result.meta.duration ?? 0);
    return result;
  };

  const statement = (inner: Statement): Statement => {
    const wrapped = {
      bind: (...values: unknown[]) => statement(inner.bind(...values)),
      all: () => paced(inner.all()),
      run: () => paced(inner.run()),
      // As D1's own first(): the first row or null, or one column of it (which must exist).
      async first(column?: string) {
        const { results } = await paced(inner.all());
        const row = results[0];
        if (row === undefined) return null;
        if (column === undefined) return row;
        if (row[column] === undefined) throw new Error(`D1_COLUMN_NOTFOUND: Column not found (${column})`);
        return row[column];
      },
      raw(): never {
        throw new Error("raw() does not report D1's time: a paced D1 binding does not offer it");
      },
    };
    unwrapped.set(wrapped, inner);
    return wrapped;
  };

  const wrappedDb = {
    prepare: (query: string) => statement(native.prepare(query)),
    async batch(statements: Statement[]) {
      const inner = statements.map((s) => {
        const found = unwrapped.get(s);
        if (!found) throw new Error("a statement of another binding in a paced D1 batch");
        return found;
      });
      const results = await native.batch(inner);
      // Each statement's own time: together, the batch's.
      await pacer.spent(results.reduce((sum, r) => sum + (r.meta.duration ?? 0), 0));
      return results;
    },
    async exec(query: string) {
      const result = await native.exec(query);
      await pacer.spent(result.duration);
      return result;
    },
    withSession(): never {
      throw new Error("sessions are not paced: a paced D1 binding does not offer them");
    },
  };
  return wrappedDb as unknown as Db;
}

/** Makes an invocation's pacer for a budget (D1_MS_PER_SECOND); tests pass one with a clock of their own. */
export type NewPacer = (msPerSecond: number) => D1Pacer;

/** An invocation's env with its D1 paced to `msPerSecond`, and the pacer (its totals are logged at the end). */
export function pacedEnv<E extends { D1: object }>(
  env: E,
  msPerSecond: number,
  newPacer: NewPacer = (ms) => new D1Pacer(ms),
): { env: E; pacer: D1Pacer } {
  const pacer = newPacer(msPerSecond);
  return { env: { ...env, D1: pacedD1(env.D1, pacer) }, pacer };
}
