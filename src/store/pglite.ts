// The embedded store: PGlite (PostgreSQL compiled to WebAssembly) in the data directory, so a
// single node needs nothing installed. It runs the very same SQL as the PostgreSQL store.

import { mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { ErrorCodes, MailhostdError, describeError } from '../errors.js'
import type { Queryable, QueryResult, Store } from './store.js'

/** Pass as dataDir for a database that lives in memory only (unit tests). */
export const IN_MEMORY = ':memory:'

/** Opens (creating if missing) the database in `<dataDir>/pglite`, or in memory for IN_MEMORY. */
export async function openPglite(dataDir: string): Promise<Store> {
  let dir: string | undefined
  if (dataDir !== IN_MEMORY) {
    dir = join(resolve(dataDir), 'pglite')
  }
  try {
    if (dir !== undefined) mkdirSync(dir, { recursive: true, mode: 0o700 })
    const db = await PGlite.create(dir)
    return new PgliteStore(db)
  } catch (e) {
    throw new MailhostdError(
      ErrorCodes.STORE_UNAVAILABLE,
      `cannot open the embedded database${dir === undefined ? '' : ` in ${dir}`}: ${describeError(e)}`,
      { cause: e },
    )
  }
}

type Params = unknown[] | undefined

class PgliteStore implements Store {
  readonly kind = 'pglite'
  readonly #db: PGlite

  constructor(db: PGlite) {
    this.#db = db
  }

  async query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
    const { rows } = await this.#db.query<R>(sql, params as Params)
    return { rows }
  }

  async exec(sql: string): Promise<void> {
    await this.#db.exec(sql)
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.#db.transaction((tx) =>
      fn({
        query: async <R>(sql: string, params?: readonly unknown[]) => {
          const { rows } = await tx.query<R>(sql, params as Params)
          return { rows }
        },
      }),
    )
  }

  async close(): Promise<void> {
    if (!this.#db.closed) await this.#db.close()
  }
}
