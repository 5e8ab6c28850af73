/**
 * The part of D1's API that shared code uses; a D1Database is one. Shared
 * code is type-checked under Node as well, where Workers' types are absent.
 */
export interface SqlStatement {
  bind(...values: unknown[]): SqlStatement;
  first<T = Record<string, unknown>>(): Promise<T | null>;
  run(): Promise<{ meta: { changes: number } }>;
}

export interface SqlDatabase {
  prepare(query: string): SqlStatement;
}
