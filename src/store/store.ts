// The store is PostgreSQL through `pg`, or embedded PGlite when no URL is configured. Both run
// the very same SQL, so everything above this interface is written once.

export interface QueryResult<R> {
  readonly rows: R[]
}

export interface Queryable {
  /** One parameterised statement ($1, $2 ...). Values are never interpolated into SQL text. */
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>
}

export interface Store extends Queryable {
  readonly kind: 'postgres' | 'pglite'
  /** Several statements, no parameters (migrations). */
  exec(sql: string): Promise<void>
  /** Runs fn in one transaction; commits on success, rolls back on throw. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>
  close(): Promise<void>
}
