/**
 * The SQL function calls of a statement, found by scanning its text: the
 * strict D1 binding counts their arguments, because production D1 allows 32
 * per function and the local runtime 127.
 *
 * A call is a name D1 knows as a function (FUNCTIONS) followed by "(",
 * outside strings, quoted identifiers and comments. A table or column list
 * in parentheses is not a call: its name is not a function's, or it follows
 * INTO, TABLE or REFERENCES, or it is the table of CREATE INDEX … ON.
 */

/**
 * The functions D1 supports: its docs ("SQL statements": "Refer to the source
 * code for the full list of supported functions") point at workerd's
 * allowlist, ALLOWED_SQLITE_FUNCTIONS in src/workerd/util/sqlite.c++ at
 * commit 343766b542f2fa30a08e6b31f50d6466710fa0e7. Anything else the local
 * runtime refuses by itself ("not authorized to use function").
 */
export const FUNCTIONS: ReadonlySet<string> = new Set(
  `abs changes char coalesce concat concat_ws format glob hex ifnull iif instr last_insert_rowid length like
  likelihood likely load_extension lower ltrim max_scalar min_scalar nullif octet_length printf quote random
  randomblob replace round rtrim sign soundex substr substring total_changes trim typeof unhex unicode unlikely
  upper zeroblob date time datetime julianday unixepoch strftime timediff current_date current_time
  current_timestamp avg count group_concat max min string_agg sum total row_number rank dense_rank percent_rank
  cume_dist ntile lag lead first_value last_value nth_value acos acosh asin asinh atan atan2 atanh ceil cos cosh
  degrees exp floor ln log log2 mod pi pow radians sin sinh sqrt tan tanh trunc json jsonb json_array
  jsonb_array json_array_length json_extract jsonb_extract json_insert jsonb_insert json_object jsonb_object
  json_patch jsonb_patch json_remove jsonb_remove json_replace jsonb_replace json_set jsonb_set json_type
  json_valid json_quote json_group_array jsonb_group_array json_group_object jsonb_group_object json_each
  json_tree match highlight bm25 snippet rtreecheck`
    .split(/\s+/)
    .filter(Boolean),
);

export interface FunctionCall {
  name: string;
  /** Arguments as SQLite counts them (count(*) has none). */
  args: number;
  /** Where the name starts: D1 reports errors "at offset N". */
  offset: number;
}

type Token = { kind: "word" | "open" | "close" | "comma" | "star" | "other"; text: string; at: number };

/** The statement's tokens, with strings, quoted identifiers and comments read as one "other" token each. */
function tokens(sql: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const skipQuoted = (close: string) => {
    i++;
    while (i < sql.length) {
      if (sql[i] === close) {
        // A doubled quote is the quote itself ('it''s', "a""b").
        if (sql[i + 1] === close && close !== "]") i += 2;
        else break;
      } else i++;
    }
    i++;
  };
  while (i < sql.length) {
    const c = sql[i] as string;
    const at = i;
    if (/\s/.test(c)) {
      i++;
    } else if (c === "-" && sql[i + 1] === "-") {
      const end = sql.indexOf("\n", i);
      i = end === -1 ? sql.length : end + 1;
    } else if (c === "/" && sql[i + 1] === "*") {
      const end = sql.indexOf("*/", i + 2);
      i = end === -1 ? sql.length : end + 2;
    } else if (c === "'" || c === '"' || c === "`" || c === "[") {
      skipQuoted(c === "[" ? "]" : c);
      out.push({ kind: "other", text: sql.slice(at, i), at });
    } else if (/[A-Za-z_]/.test(c)) {
      while (i < sql.length && /[A-Za-z0-9_$]/.test(sql[i] as string)) i++;
      out.push({ kind: "word", text: sql.slice(at, i).toLowerCase(), at });
    } else {
      i++;
      const kind = c === "(" ? "open" : c === ")" ? "close" : c === "," ? "comma" : c === "*" ? "star" : "other";
      out.push({ kind, text: c, at });
    }
  }
  return out;
}

/** Words after which a name in front of "(" is a table, not a function. */
const TABLE_BEFORE = new Set(["into", "table", "references"]);

export function functionCalls(sql: string): FunctionCall[] {
  const list = tokens(sql);
  const createsIndex = list[0]?.text === "create" && list.slice(1, 4).some((t) => t.text === "index");
  const calls: FunctionCall[] = [];
  for (let k = 0; k + 1 < list.length; k++) {
    const name = list[k] as Token;
    if (name.kind !== "word" || list[k + 1]?.kind !== "open" || !FUNCTIONS.has(name.text)) continue;
    const before = list[k - 1]?.text ?? "";
    if (TABLE_BEFORE.has(before) || (createsIndex && before === "on")) continue;
    calls.push({ name: name.text, args: argumentCount(list, k + 1), offset: name.at });
  }
  return calls;
}

/** The arguments of the call whose "(" is list[open]: top-level commas plus one, none for "()" and "(*)". */
function argumentCount(list: readonly Token[], open: number): number {
  let depth = 0;
  let commas = 0;
  let sawArgument = false;
  for (let k = open + 1; k < list.length; k++) {
    const t = list[k] as Token;
    if (t.kind === "open") depth++;
    if (t.kind === "close") {
      if (depth === 0) break;
      depth--;
    }
    if (depth === 0 && t.kind === "comma") commas++;
    // ORDER BY inside an aggregate's parentheses is not an argument list.
    if (depth === 0 && t.text === "order" && list[k + 1]?.text === "by") break;
    if (t.kind !== "star") sawArgument = true;
  }
  return sawArgument ? commas + 1 : 0;
}
