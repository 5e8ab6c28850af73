/**
 * The wide table of `pnpm bench --wide N` and `pnpm heap-profile --wide N`:
 * the seeded traffic_events widened to N columns of every type.
 */
import { DatabaseSync } from "node:sqlite";

/** Columns of traffic_events as `pnpm seed` writes it, id included. */
export const SEEDED_COLUMNS = 11;
/** Declared types of the columns --wide adds, in turn: INTEGER, REAL, TEXT, NUMERIC and none. */
const WIDE_TYPES = ["INTEGER", "REAL", "TEXT", "NUMERIC", ""] as const;

/**
 * Widens the seeded table to `columns` columns, straight in the local D1's
 * SQLite file, and fills them for every row: NULLs, REALs of any magnitude,
 * integers, short unicode text; a row of the wide table has a REAL, so every
 * page is a row page.
 */
export function widen(file: string, columns: number): void {
  const db = new DatabaseSync(file);
  try {
    db.exec("PRAGMA busy_timeout = 30000");
    const added = Array.from({ length: columns - SEEDED_COLUMNS }, (_, k) => `x${k}`);
    for (const [k, name] of added.entries()) {
      db.exec(`ALTER TABLE traffic_events ADD COLUMN ${name} ${WIDE_TYPES[k % WIDE_TYPES.length]}`);
    }
    const value = (k: number) => {
      const v = {
        INTEGER: `id * ${k + 1} - 5000`,
        REAL: `(random() / 9.2233720368547758e18) * 1e${((k * 37) % 600) - 300}`,
        TEXT: `'v' || (id % 1000) || '-${k} ' || substr('äß€😀x', 1, (id + ${k}) % 6)`,
        NUMERIC: "CASE WHEN id % 2 THEN id + 0.25 ELSE id END",
        "": "CASE WHEN id % 2 THEN 't' || (id % 100) ELSE id * 3 END",
      }[WIDE_TYPES[k % WIDE_TYPES.length] as (typeof WIDE_TYPES)[number]];
      return `CASE WHEN (id + ${k}) % 7 = 0 THEN NULL ELSE ${v} END`;
    };
    db.exec(`UPDATE traffic_events SET ${added.map((c, k) => `${c} = ${value(k)}`).join(", ")}`);
  } finally {
    db.close();
  }
}
