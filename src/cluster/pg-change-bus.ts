// Change notifications between the instances that share one PostgreSQL store, over
// LISTEN/NOTIFY. Sending goes through the writer's transaction (PostgreSQL delivers at commit,
// never for a rollback) or the store's pool; receiving needs one dedicated session, which this
// module keeps alive: when it breaks it is re-opened with backoff, and because notifications
// sent meanwhile are lost for good, subscribers are then told to resync. A heartbeat turns a
// connection that died silently (no RST: a failover, a partition) into a broken one.

import pg from 'pg'
import { describeError } from '../errors.js'
import { LogThrottle, type Logger } from '../log.js'
import { describePostgresUrl } from '../store/postgres.js'
import type { Queryable } from '../store/store.js'
import { Subscribers, type Change, type ChangeBus, type ChangeEvent } from './changes.js'

export const CHANGE_CHANNEL = 'mailhostd_changes'
/** The listening session's name in pg_stat_activity. */
export const LISTENER_APPLICATION_NAME = 'mailhostd-changes'
/**
 * PostgreSQL refuses payloads of 8000 bytes or more; the margin keeps the size estimate (which
 * counts a comma for every item) on the safe side.
 */
export const MAX_PAYLOAD_BYTES = 7900

const WIRE_VERSION = 1
const RECONNECT_FIRST_MS = 100
const RECONNECT_MAX_MS = 5000
const DEFAULT_HEARTBEAT_MS = 15_000

export interface PgChangeBusOptions {
  readonly url: string
  readonly connectTimeoutMs: number
  readonly logger: Logger
  /** Sends notifications that have no transaction (LDAP writes): the store, i.e. its pool. */
  readonly store: Queryable
  /** How often the listening session proves it is alive, ms (default 15 s). */
  readonly heartbeatMs?: number
}

type Handler = (event: ChangeEvent) => void

export class PgChangeBus implements ChangeBus {
  readonly #o: PgChangeBusOptions
  readonly #log: Logger
  /** host:port/database: the URL may carry a password. */
  readonly #server: string
  readonly #subscribers: Subscribers
  readonly #throttle = new LogThrottle(60_000)
  #client: pg.Client | undefined
  #reconnectTimer: NodeJS.Timeout | undefined
  #heartbeatTimer: NodeJS.Timeout | undefined
  /** A session being opened, so that close() can end it too. */
  #connecting: pg.Client | undefined
  #backoffMs = RECONNECT_FIRST_MS
  #closed = false

  constructor(options: PgChangeBusOptions) {
    this.#o = options
    this.#log = options.logger.child({ component: 'change-bus' })
    this.#subscribers = new Subscribers(this.#log)
    this.#server = describePostgresUrl(options.url)
  }

  /**
   * Opens the listening session. A failure is logged and retried in the background rather than
   * failing the start: the store answered a moment ago, and TTL still bounds staleness meanwhile.
   */
  async start(): Promise<void> {
    try {
      await this.#listen()
      this.#log.info({ store: this.#server, channel: CHANGE_CHANNEL }, 'change bus: listening for changes from other instances')
    } catch (e) {
      this.#log.warn({ store: this.#server, reason: describeError(e) }, 'change bus: cannot listen for changes yet; retrying in the background')
      this.#scheduleReconnect()
    }
    const heartbeat = setInterval(() => void this.#heartbeat(), this.#o.heartbeatMs ?? DEFAULT_HEARTBEAT_MS)
    heartbeat.unref()
    this.#heartbeatTimer = heartbeat
  }

  async publish(change: Change, tx?: Queryable): Promise<void> {
    const q = tx ?? this.#o.store
    for (const payload of changePayloads(change)) await q.query('select pg_notify($1, $2)', [CHANGE_CHANNEL, payload])
  }

  subscribe(handler: Handler): void {
    this.#subscribers.add(handler)
  }

  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#reconnectTimer)
    clearInterval(this.#heartbeatTimer)
    const clients = [this.#client, this.#connecting]
    this.#client = undefined
    for (const c of clients) if (c) await c.end().catch(() => undefined)
  }

  async #listen(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.#o.url,
      connectionTimeoutMillis: this.#o.connectTimeoutMs,
      application_name: LISTENER_APPLICATION_NAME,
      keepAlive: true,
      // Bounds the LISTEN and the heartbeat: a server that stopped answering counts as gone.
      query_timeout: this.#o.connectTimeoutMs,
    })
    // Registered before connecting: a pg.Client without an 'error' listener crashes the process.
    // Until the session listens, a failure rejects connect() or the LISTEN instead.
    client.on('error', (err) => this.#lost(client, err))
    client.on('end', () => this.#lost(client, undefined))
    client.on('notification', (msg) => {
      if (client === this.#client && msg.channel === CHANGE_CHANNEL) this.#receive(msg.payload)
    })
    this.#connecting = client
    try {
      await client.connect()
      await client.query(`listen ${CHANGE_CHANNEL}`)
    } catch (e) {
      await client.end().catch(() => undefined)
      throw e
    } finally {
      this.#connecting = undefined
    }
    if (this.#closed) await client.end().catch(() => undefined)
    else this.#client = client
  }

  #lost(client: pg.Client, err: Error | undefined): void {
    if (client !== this.#client || this.#closed) return
    this.#client = undefined
    // Ends the socket too; a session that errored is never reused.
    client.end().catch(() => undefined)
    this.#log.warn(
      { store: this.#server, reason: err ? describeError(err) : 'connection closed' },
      'change bus: listening session lost; reconnecting (notifications sent meanwhile are lost: caches will resync)',
    )
    this.#scheduleReconnect()
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#reconnectTimer !== undefined) return
    const delay = this.#backoffMs
    this.#backoffMs = Math.min(this.#backoffMs * 2, RECONNECT_MAX_MS)
    this.#reconnectTimer = setTimeout(() => void this.#reconnect(), delay)
    this.#reconnectTimer.unref()
  }

  async #reconnect(): Promise<void> {
    this.#reconnectTimer = undefined
    if (this.#closed) return
    try {
      await this.#listen()
    } catch (e) {
      this.#throttle.run('reconnect', (suppressed) =>
        this.#log.warn({ store: this.#server, reason: describeError(e), suppressed }, 'change bus: reconnecting failed; retrying'),
      )
      this.#scheduleReconnect()
      return
    }
    if (this.#closed) return
    this.#backoffMs = RECONNECT_FIRST_MS
    this.#log.info({ store: this.#server }, 'change bus: listening again; resyncing caches')
    // Whatever was sent while no session listened is lost: only a resync is safe.
    this.#subscribers.emit({ kind: 'resync' })
  }

  async #heartbeat(): Promise<void> {
    const client = this.#client
    if (!client || this.#closed) return
    try {
      await client.query('select 1')
    } catch (e) {
      this.#lost(client, e instanceof Error ? e : new Error(describeError(e)))
    }
  }

  #receive(payload: string | undefined): void {
    const event = parseChangePayload(payload)
    if (!event) {
      this.#throttle.run('malformed', (suppressed) =>
        this.#log.warn({ payload: payload?.slice(0, 200), suppressed }, `change bus: ignoring a malformed notification on ${CHANGE_CHANNEL}`),
      )
      return
    }
    this.#subscribers.emit(event)
  }

}

/**
 * The notification payloads for one change: JSON, each under MAX_PAYLOAD_BYTES. An `entries`
 * change is split over as many as it takes; an item too long for any payload (no address is,
 * an absurd DN might be) is replaced by a resync, so a change is never silently dropped.
 */
export function changePayloads(change: Change): string[] {
  // Pin selectors are ids and one address: always far below the payload limit.
  if (change.kind === 'pins') return [JSON.stringify({ v: WIRE_VERSION, ...change })]
  if (change.kind !== 'entries') return [JSON.stringify({ v: WIRE_VERSION, kind: change.kind })]
  const empty = entriesPayload([], [])
  const out: string[] = []
  let addresses: string[] = []
  let ids: string[] = []
  let size = Buffer.byteLength(empty)
  let oversized = false
  const flush = () => {
    if (addresses.length + ids.length > 0) out.push(entriesPayload(addresses, ids))
    addresses = []
    ids = []
    size = Buffer.byteLength(empty)
  }
  const add = (list: 'addresses' | 'ids', value: string) => {
    // The item as JSON and its separating comma.
    const cost = Buffer.byteLength(JSON.stringify(value)) + 1
    if (Buffer.byteLength(empty) + cost > MAX_PAYLOAD_BYTES) {
      oversized = true
      return
    }
    if (size + cost > MAX_PAYLOAD_BYTES) flush()
    ;(list === 'addresses' ? addresses : ids).push(value)
    size += cost
  }
  for (const a of change.addresses) add('addresses', a)
  for (const id of change.ids) add('ids', id)
  flush()
  if (oversized) out.push(JSON.stringify({ v: WIRE_VERSION, kind: 'resync' }))
  return out
}

function entriesPayload(addresses: readonly string[], ids: readonly string[]): string {
  return JSON.stringify({ v: WIRE_VERSION, kind: 'entries', addresses, ids })
}

/** The event a payload carries, or undefined when it is not one this version understands. */
export function parseChangePayload(payload: string | undefined): ChangeEvent | undefined {
  if (payload === undefined) return undefined
  let data: unknown
  try {
    data = JSON.parse(payload)
  } catch {
    return undefined
  }
  if (typeof data !== 'object' || data === null) return undefined
  const m = data as Record<string, unknown>
  if (m.v !== WIRE_VERSION) return undefined
  switch (m.kind) {
    case 'registry':
    case 'moves':
    case 'health':
    case 'resync':
      return { kind: m.kind }
    case 'entries':
      if (!isStringArray(m.addresses) || !isStringArray(m.ids)) return undefined
      return { kind: 'entries', addresses: m.addresses, ids: m.ids }
    case 'pins':
      if (typeof m.pool !== 'string' || !optionalString(m.member) || !optionalString(m.address)) return undefined
      return { kind: 'pins', pool: m.pool, ...(m.member === undefined ? {} : { member: m.member }), ...(m.address === undefined ? {} : { address: m.address }) }
    default:
      return undefined
  }
}

const optionalString = (v: unknown): v is string | undefined => v === undefined || typeof v === 'string'
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string')
