// Which mailhostd instances are alive, as the store sees it. Each process registers a fresh
// identity at start and keeps it alive; work an instance claims (an Idempotency-Key, an intent,
// a copy hook) carries that identity, so after a crash the work of a dead instance can be taken
// over at once while the work of a live one, on another host, is left alone.
//
// Alive means: the heartbeat is recent (a hung process loses its claims after LEASE_MS) and, on
// PostgreSQL, the instance's own session still exists. A process killed with SIGKILL closes its
// sockets, PostgreSQL ends that session within moments, and its claims are free long before any
// lease could run out. The decision itself is one SQL function (mailhostd_instance_alive, in
// migration 4), so every query that takes work over judges the same way. On PGlite one process
// owns the database: every earlier identity is dead the moment this one starts.

import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import pg from 'pg'
import { describeError } from '../errors.js'
import type { Logger } from '../log.js'
import type { Store } from '../store/store.js'

/** How often an instance renews its heartbeat. */
export const HEARTBEAT_MS = 5_000
/** A heartbeat older than this means the instance is gone, whatever its session says. */
export const LEASE_MS = 30_000

/** The SQL predicate "the instance named by `column` is alive"; $lease is the lease parameter. */
export const aliveSql = (column: string, leaseParam: string) => `mailhostd_instance_alive(${column}, ${leaseParam}::double precision)`

export interface PresenceOptions {
  readonly store: Store
  /** The PostgreSQL URL (store.url); undefined on PGlite. */
  readonly url: string | undefined
  readonly connectTimeoutMs: number
  readonly logger: Logger
}

export interface Instance {
  /** This process's identity in the store. */
  readonly id: string
  readonly leaseMs: number
}

export class Presence implements Instance {
  readonly id = randomUUID()
  readonly leaseMs = LEASE_MS
  readonly #o: PresenceOptions
  readonly #log: Logger
  #session: pg.Client | undefined
  #timer: NodeJS.Timeout | undefined
  #closed = false

  constructor(options: PresenceOptions) {
    this.#o = options
    this.#log = options.logger.child({ component: 'presence' })
  }

  /** Registers this instance. Fails the start when the store cannot take the row. */
  async start(): Promise<void> {
    const { store } = this.#o
    if (this.#o.url === undefined) {
      // PGlite: this process owns the database, so every other identity belongs to a process
      // that has ended (a crash left its row behind).
      await store.query('delete from instances where id <> $1', [this.id])
    }
    await store.query(
      `insert into instances (id, host, pid) values ($1, $2, $3)
       on conflict (id) do update set heartbeat_at = now()`,
      [this.id, hostname(), process.pid],
    )
    if (this.#o.url !== undefined) await this.#openSession().catch((e: unknown) => this.#lost(e))
    const timer = setInterval(() => void this.#beat(), HEARTBEAT_MS)
    timer.unref()
    this.#timer = timer
    this.#log.info({ instance: this.id }, 'presence: instance registered')
  }

  /** Deletes this instance's row: a clean stop leaves nothing for others to take over. */
  async close(): Promise<void> {
    this.#closed = true
    clearInterval(this.#timer)
    await this.#o.store.query('delete from instances where id = $1', [this.id]).catch((e: unknown) => {
      this.#log.warn({ err: describeError(e) }, 'presence: could not remove this instance; it expires with its lease')
    })
    await this.#session?.end().catch(() => undefined)
    this.#session = undefined
  }

  /**
   * A session of its own, held for the instance's lifetime: pooled sessions come and go, this
   * one ends only when the process does (or the network breaks, and then it is re-opened).
   */
  async #openSession(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.#o.url,
      connectionTimeoutMillis: this.#o.connectTimeoutMs,
      application_name: 'mailhostd-presence',
      keepAlive: true,
      query_timeout: this.#o.connectTimeoutMs,
    })
    // Without an 'error' listener a broken pg.Client crashes the process.
    client.on('error', (e) => this.#lost(e, client))
    client.on('end', () => this.#lost(undefined, client))
    await client.connect()
    try {
      await client.query(
        `update instances set heartbeat_at = now(), session_pid = pg_backend_pid(),
                session_started = (select backend_start from pg_stat_activity where pid = pg_backend_pid())
          where id = $1`,
        [this.id],
      )
    } catch (e) {
      await client.end().catch(() => undefined)
      throw e
    }
    if (this.#closed) {
      await client.end().catch(() => undefined)
      return
    }
    this.#session = client
  }

  #lost(e: unknown, client?: pg.Client): void {
    if (client !== undefined && client !== this.#session) return
    this.#session = undefined
    if (this.#closed) return
    this.#log.warn({ err: e === undefined ? 'session ended' : describeError(e) }, 'presence: store session lost; re-opened at the next heartbeat')
  }

  /** Renews the heartbeat, and re-opens the session when it was lost. */
  async #beat(): Promise<void> {
    if (this.#closed) return
    try {
      if (this.#o.url !== undefined && this.#session === undefined) await this.#openSession()
      const beat = 'update instances set heartbeat_at = now() where id = $1 returning id'
      const { rows } = this.#session ? await this.#session.query(beat, [this.id]) : await this.#o.store.query(beat, [this.id])
      // Taken for dead and removed (the store was unreachable for longer than the lease): come
      // back under the same identity; whatever was taken over meanwhile stays taken over.
      if (rows.length === 0) {
        await this.#o.store.query('insert into instances (id, host, pid) values ($1, $2, $3) on conflict (id) do nothing', [this.id, hostname(), process.pid])
        if (this.#session !== undefined) await this.#session.end().catch(() => undefined)
        this.#session = undefined
      }
    } catch (e) {
      this.#log.warn({ err: describeError(e) }, 'presence: heartbeat failed')
    }
  }
}
