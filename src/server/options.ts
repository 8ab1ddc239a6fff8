// What every lookup listener takes and offers. Independent of the config module (the daemon
// converts `limits.*` with toMs), so tests build options by hand.

import type { Logger } from '../log.js'
import type { LookupService } from '../resolve/answer.js'

export interface ListenerLimits {
  /** Open connections per listener; connections beyond it are closed at once. */
  readonly maxConnections: number
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

/** Options of the lookup listeners (socketmap, tcp_table). */
export interface ServerOptions extends ListenerOptions {
  readonly lookup: LookupService
}

export interface LineServer {
  listen(): Promise<{ host: string; port: number }>
  /**
   * Stops accepting at once, lets requests in flight finish and send their replies, closes idle
   * connections, and destroys whatever is still open after graceMs.
   */
  close(graceMs: number): Promise<void>
  /** Open connections right now (for metrics). */
  readonly connections: number
}
