// Which connections a listener takes (every TCP listener, HTTP included). Two limits:
// limits.maxConnections for the listener and limits.maxConnectionsPerClient per client address,
// so one address cannot take every slot. When the listener is full, the connection that has
// waited longest without completing a request makes room for the new one: a real peer (Postfix,
// Dovecot, nginx) sends its request the moment it connects, so connections that hold a slot
// silently are the ones to lose it, and a flood of them cannot lock real clients out. Only when
// every connection has completed a request is a new one refused.

import { ipKey, MAX_IPV6_PREFIX } from '../auth/ip-key.js'
import type { Logger } from '../log.js'

export interface AdmissionLimits {
  /** Open connections per listener. */
  readonly maxConnections: number
  /** Open connections per listener from one client address. */
  readonly maxConnectionsPerClient: number
}

/** Why a connection was turned away (the log line's `reason`). */
export type Refusal = 'listener full' | 'client full'

/** At most one warning per interval for refused connections, carrying the counts. */
const WARN_INTERVAL_MS = 60_000

/**
 * The client an address counts for, by the same rule as the login brakes (src/auth/ip-key.ts):
 * IPv4-mapped IPv6 (`::ffff:192.0.2.7`, as a dual-stack listener sees IPv4 peers) is the IPv4
 * address, so a peer is one client whichever way it came. IPv6 counts per whole address here,
 * not per /64: one site's Postfix hosts often share a /64, and each opens a connection per
 * smtpd process; the eviction of silent connections already protects from many addresses.
 */
export function clientOf(address: string | undefined): string | undefined {
  if (address === undefined) return undefined
  return ipKey(address, MAX_IPV6_PREFIX) ?? address
}

export class Admission<C> {
  readonly #limits: AdmissionLimits
  readonly #evict: (conn: C) => void
  readonly #log: Logger
  /** Every admitted connection and its client (undefined: a unix socket, never capped per client). */
  readonly #clients = new Map<C, string | undefined>()
  readonly #perClient = new Map<string, number>()
  /** Connections without a completed request, oldest first (a Set keeps insertion order). */
  readonly #waiting = new Set<C>()
  #refused: Record<Refusal, number> = { 'listener full': 0, 'client full': 0 }
  #evicted = 0
  #lastWarn = Number.NEGATIVE_INFINITY

  /** `evict` closes a connection that must make room; release() is still called when it is gone. */
  constructor(limits: AdmissionLimits, evict: (conn: C) => void, log: Logger) {
    this.#limits = limits
    this.#evict = evict
    this.#log = log
  }

  get size(): number {
    return this.#clients.size
  }

  /** Admits `conn` from `address` (undefined for unix sockets), making room if need be; false: close it. */
  admit(conn: C, address: string | undefined): boolean {
    const client = clientOf(address)
    if (client !== undefined && (this.#perClient.get(client) ?? 0) >= this.#limits.maxConnectionsPerClient) {
      return this.#refuse('client full', client)
    }
    if (this.#clients.size >= this.#limits.maxConnections) {
      const oldest = this.#waiting.values().next()
      if (oldest.done === true) return this.#refuse('listener full', client)
      // Forgotten at once, so the count is right before the evicted socket's close event.
      this.release(oldest.value)
      this.#evicted++
      this.#evict(oldest.value)
      this.#warn()
    }
    this.#clients.set(conn, client)
    this.#waiting.add(conn)
    if (client !== undefined) this.#perClient.set(client, (this.#perClient.get(client) ?? 0) + 1)
    return true
  }

  /** `conn` completed a request: it is a real client and no longer gives way to new ones. */
  started(conn: C): void {
    this.#waiting.delete(conn)
  }

  /** `conn` is gone (or was evicted). Idempotent. */
  release(conn: C): void {
    if (!this.#clients.has(conn)) return
    const client = this.#clients.get(conn)
    this.#clients.delete(conn)
    this.#waiting.delete(conn)
    if (client === undefined) return
    const n = (this.#perClient.get(client) ?? 1) - 1
    if (n === 0) this.#perClient.delete(client)
    else this.#perClient.set(client, n)
  }

  #refuse(reason: Refusal, client: string | undefined): false {
    this.#refused[reason]++
    this.#warn(client)
    return false
  }

  /** One line per interval at most, with what happened since the last one. */
  #warn(client?: string): void {
    const now = Date.now()
    if (now - this.#lastWarn < WARN_INTERVAL_MS) return
    const refused = this.#refused
    this.#log.warn(
      {
        refusedListenerFull: refused['listener full'],
        refusedClientFull: refused['client full'],
        evictedSilent: this.#evicted,
        ...(client === undefined ? {} : { lastClient: client }),
        maxConnections: this.#limits.maxConnections,
        maxConnectionsPerClient: this.#limits.maxConnectionsPerClient,
      },
      'connection limit reached: closing new connections, or connections that sent no request yet',
    )
    this.#refused = { 'listener full': 0, 'client full': 0 }
    this.#evicted = 0
    this.#lastWarn = now
  }
}
