// What every lookup listener takes and offers. Independent of the config module (the daemon
// converts `limits.*` with toMs), so tests build options by hand.

import type { Logger } from '../log.js'
import type { LookupService } from '../resolve/answer.js'

export interface ListenerLimits {
  /**
   * Open connections per listener. At the limit, the oldest connection without a completed
   * request is closed to make room; when there is none, the new connection is closed at once.
   */
  readonly maxConnections: number
  /** Open connections per listener from one client address (unix sockets have none). */
  readonly maxConnectionsPerClient: number
  /** A connection must complete its first request within this time of connecting, or it closes. */
  readonly firstRequestTimeoutMs: number
  /** Close a connection that sends no byte for this long between requests. */
  readonly idleTimeoutMs: number
  /** A request whose first byte arrived must be complete within this time, or the connection closes. */
  readonly requestTimeoutMs: number
  /** Largest request payload (socketmap) or line (tcp_table) accepted, in bytes. */
  readonly maxRequestBytes: number
}

export interface ListenerOptions {
  readonly host: string
  /** 0 picks a free port; listen() reports the one bound. */
  readonly port: number
  readonly logger: Logger
  readonly limits: ListenerLimits
}

/** A listener on a unix stream socket (the dict protocol: Dovecot connects only to those). */
export interface UnixListenerOptions {
  /**
   * Socket file. A stale socket left by a previous run is replaced; anything else at the path
   * (a regular file, a directory, a socket someone still answers on) makes listen() fail.
   */
  readonly path: string
  /** Permission bits set on the socket file once bound, e.g. 0o660 (connecting needs write access). */
  readonly mode: number
  readonly logger: Logger
  readonly limits: ListenerLimits
}

/**
 * Where a listener is bound. A unix socket reports its `path`, with host `unix` and port 0 so
 * every consumer of the TCP shape (the daemon's `bound` list, its ready log line) still works.
 */
export interface ListenAddress {
  readonly host: string
  readonly port: number
  readonly path?: string
}

/** Options of the lookup listeners (socketmap, tcp_table). */
export interface ServerOptions extends ListenerOptions {
  readonly lookup: LookupService
}

export interface LineServer {
  listen(): Promise<ListenAddress>
  /**
   * Stops accepting at once, lets requests in flight finish and send their replies, closes idle
   * connections, and destroys whatever is still open after graceMs. A unix socket file is
   * removed.
   */
  close(graceMs: number): Promise<void>
  /** Open connections right now (for metrics). */
  readonly connections: number
}
