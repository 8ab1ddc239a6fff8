// The shared store: PostgreSQL through a pg.Pool. Every session carries a server-side
// statement_timeout, connecting is bounded, and a connection that dies while idle is logged and
// replaced, never allowed to crash the daemon. The URL may hold a password: only host, port and
// database name are ever logged.

import pg from 'pg'
import { ConfigError, ErrorCodes, MailhostdError, describeError } from '../errors.js'
import type { Logger } from '../log.js'
import type { Queryable, QueryResult, Store } from './store.js'

export interface PostgresOptions {
  readonly url: string
  readonly poolSize: number
  readonly connectTimeoutMs: number
  readonly statementTimeoutMs: number
}

/**
 * The client-side read timeout trails the server's statement_timeout, so a live server reports
 * its own (clearer) error first and the client timer only fires when the server has gone silent.
 */
const READ_TIMEOUT_MARGIN_MS = 1000
/** Idle pooled sessions are closed after this, so a quiet daemon does not pin server slots. */
const IDLE_TIMEOUT_MS = 30_000

/** `host:port/database`: a log-safe name for the server a URL points at. */
export function describePostgresUrl(url: string): string {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    // The message must not echo the URL: it may carry a password.
    throw new ConfigError('store.url', 'not a valid postgres:// URL')
  }
  return `${u.hostname || 'localhost'}:${u.port || '5432'}${u.pathname}`
}

/** Opens the pool and proves it can reach the server, so a bad URL fails the start clearly. */
export async function openPostgres(opts: PostgresOptions, logger: Logger): Promise<Store> {
  const target = describePostgresUrl(opts.url)
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.poolSize,
    connectionTimeoutMillis: opts.connectTimeoutMs,
    statement_timeout: opts.statementTimeoutMs,
    query_timeout: opts.statementTimeoutMs + READ_TIMEOUT_MARGIN_MS,
    idleTimeoutMillis: IDLE_TIMEOUT_MS,
    keepAlive: true,
    application_name: 'mailhostd',
  })
  pool.on('error', (err) => {
    logger.warn({ store: target, reason: describeError(err) }, 'store: idle PostgreSQL connection lost')
  })
  try {
    await pool.query('select 1')
  } catch (e) {
    await pool.end().catch(() => undefined)
    throw new MailhostdError(ErrorCodes.STORE_UNAVAILABLE, `cannot connect to PostgreSQL at ${target}: ${describeError(e)}`)
  }
  logger.info({ store: target, poolSize: opts.poolSize }, 'store: connected to PostgreSQL')
  return new PostgresStore(pool)
}

class PostgresStore implements Store {
  readonly kind = 'postgres'
  readonly #pool: pg.Pool
  #closed = false

  constructor(pool: pg.Pool) {
    this.#pool = pool
  }

  async query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
    const res = await this.#pool.query(sql, params as unknown[] | undefined)
    return { rows: res.rows as R[] }
  }

  async exec(sql: string): Promise<void> {
    // Without parameters pg uses the simple protocol, which accepts several statements.
    await this.#pool.query(sql)
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect()
    // A client whose ROLLBACK failed is in an unknown state: handing it back would poison the pool.
    let broken: Error | undefined
    try {
      await client.query('begin')
      const result = await fn({
        query: async <R>(sql: string, params?: readonly unknown[]) => {
          const res = await client.query(sql, params as unknown[] | undefined)
          return { rows: res.rows as R[] }
        },
      })
      await client.query('commit')
      return result
    } catch (e) {
      await client.query('rollback').catch((rollbackError: unknown) => {
        broken = rollbackError instanceof Error ? rollbackError : new Error(describeError(rollbackError))
      })
      throw e
    } finally {
      client.release(broken)
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#pool.end()
  }
}
