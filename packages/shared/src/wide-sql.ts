/**
 * SQL over every column of a table, shaped to stay within D1's limits for a
 * table of up to 100 columns (D1's maximum): at most 32 arguments per
 * function call, expressions at most 100 deep (`a OR b OR c …` is one level
 * deeper per term), at most 100 columns in a result.
 */

/** D1 allows 32 arguments per SQL function. */
export const MAX_FUNCTION_ARGUMENTS = 32;

/**
 * `terms` joined by a binary operator as a balanced tree, so its depth grows
 * with log2 of their number, not with it; `empty` when there are none. The
 * value is that of the plain chain: AND, OR and + are associative in SQLite
 * (NULLs included).
 */
export function balanced(terms: readonly string[], operator: "AND" | "OR" | "+", empty: string): string {
  if (terms.length === 0) return empty;
  if (terms.length === 1) return `(${terms[0]})`;
  const half = Math.ceil(terms.length / 2);
  return `(${balanced(terms.slice(0, half), operator, empty)} ${operator} ${balanced(terms.slice(half), operator, empty)})`;
}

/**
 * concat() of `pieces` in order, nested so that no call takes more than
 * MAX_FUNCTION_ARGUMENTS. concat() skips NULLs: pieces must not be NULL.
 */
export function concatSql(pieces: readonly string[]): string {
  if (pieces.length <= MAX_FUNCTION_ARGUMENTS) return `concat(${pieces.join(", ")})`;
  const groups: string[] = [];
  const size = Math.ceil(pieces.length / Math.ceil(pieces.length / MAX_FUNCTION_ARGUMENTS));
  for (let i = 0; i < pieces.length; i += size) groups.push(concatSql(pieces.slice(i, i + size)));
  return concatSql(groups);
}

/** A string as an SQL literal. */
export function sqlString(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}
