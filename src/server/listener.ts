// A generic TCP listener for line protocols (socketmap, tcp_table, policy): accepts connections up to a limit, runs a
// Connection per socket, and shuts down gracefully. Protocols differ only in their Wire.

import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { describeError } from '../errors.js'
import type { Logger } from '../log.js'
import { Connection, type ConnectionContext, type Wire } from './connection.js'
import type { LineServer, ListenerOptions } from './options.js'

/** At most one "connection limit reached" warning per interval, carrying the count dropped. */
const DROP_WARN_INTERVAL_MS = 60_000

export class Listener<R> implements LineServer {
  readonly #server: Server
  readonly #wire: Wire<R>
  readonly #options: ListenerOptions
  readonly #ctx: ConnectionContext
  readonly #log: Logger
  readonly #conns = new Set<Connection<R>>()
  #closing: Promise<void> | undefined
  #dropped = 0
  #lastDropWarn = Number.NEGATIVE_INFINITY

  constructor(wire: Wire<R>, options: ListenerOptions, logger: Logger) {
    this.#wire = wire
    this.#options = options
    this.#log = logger
    this.#ctx = { logger, limits: options.limits }
    // Half-open: a client may send its last request and shut down its side; it still gets the reply.
    this.#server = createServer({ allowHalfOpen: true }, (socket) => this.#accept(socket))
  }

  get connections(): number {
    return this.#conns.size
  }

  listen(): Promise<{ host: string; port: number }> {
    const server = this.#server
    return new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen({ host: this.#options.host, port: this.#options.port }, () => {
        server.off('error', reject)
        server.on('error', (err) => this.#log.error({ err: describeError(err) }, 'listener error'))
        const { address, port } = server.address() as AddressInfo
        this.#log.info({ host: address, port }, 'listening')
        resolve({ host: address, port })
      })
    })
  }

  close(graceMs: number): Promise<void> {
    this.#closing ??= this.#shutdown(graceMs)
    return this.#closing
  }

  async #shutdown(graceMs: number): Promise<void> {
    const serverClosed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
    const conns = [...this.#conns]
    const allClosed = Promise.all(conns.map((c) => c.closed))
    for (const c of conns) c.drain()
    let timer: NodeJS.Timeout | undefined
    const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))
    await Promise.race([allClosed, graceOver])
    clearTimeout(timer)
    if (this.#conns.size > 0) this.#log.warn({ connections: this.#conns.size }, 'grace period over; dropping connections')
    for (const c of this.#conns) c.destroy()
    await allClosed
    await serverClosed
    this.#log.info('closed')
  }

  #accept(socket: Socket): void {
    if (this.#closing !== undefined || this.#conns.size >= this.#options.limits.maxConnections) {
      socket.on('error', () => undefined)
      socket.destroy()
      if (this.#closing === undefined) this.#warnDropped()
      return
    }
    const conn = new Connection(socket, this.#wire, this.#ctx)
    this.#conns.add(conn)
    void conn.closed.then(() => this.#conns.delete(conn))
  }

  #warnDropped(): void {
    this.#dropped++
    const now = Date.now()
    if (now - this.#lastDropWarn < DROP_WARN_INTERVAL_MS) return
    this.#log.warn(
      { dropped: this.#dropped, maxConnections: this.#options.limits.maxConnections },
      'connection limit reached; closing new connections',
    )
    this.#dropped = 0
    this.#lastDropWarn = now
  }
}
