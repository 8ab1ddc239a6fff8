// A generic listener for line protocols, on TCP (socketmap, tcp_table, policy) or on a unix
// socket (dict): accepts connections up to a limit, runs a Connection per socket, and shuts down
// gracefully. Protocols differ only in their Wire.

import { chmod, lstat, rm, stat } from 'node:fs/promises'
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { dirname } from 'node:path'
import { describeError } from '../errors.js'
import type { Logger } from '../log.js'
import { Admission } from './admission.js'
import { Connection, type ConnectionContext, type Wire } from './connection.js'
import type { LineServer, ListenAddress, ListenerOptions, UnixListenerOptions } from './options.js'

export class Listener<R> implements LineServer {
  readonly #server: Server
  readonly #wire: Wire<R>
  readonly #options: ListenerOptions | UnixListenerOptions
  readonly #ctx: ConnectionContext
  readonly #log: Logger
  readonly #conns = new Set<Connection<R>>()
  readonly #admission: Admission<Socket>
  #closing: Promise<void> | undefined

  constructor(wire: Wire<R>, options: ListenerOptions | UnixListenerOptions, logger: Logger) {
    this.#wire = wire
    this.#options = options
    this.#log = logger
    this.#ctx = { logger, limits: options.limits }
    this.#admission = new Admission<Socket>(options.limits, (socket) => socket.destroy(), logger)
    // Half-open: a client may send its last request and shut down its side; it still gets the reply.
    this.#server = createServer({ allowHalfOpen: true }, (socket) => this.#accept(socket))
  }

  get connections(): number {
    return this.#conns.size
  }

  async listen(): Promise<ListenAddress> {
    const o = this.#options
    if (!('path' in o)) {
      await this.#bind({ host: o.host, port: o.port })
      const { address, port } = this.#server.address() as AddressInfo
      this.#log.info({ host: address, port }, 'listening')
      return { host: address, port }
    }
    await clearStaleSocket(o.path, o.mode)
    await this.#bind({ path: o.path })
    try {
      // Bound with the umask's bits; the configured mode applies from here on. The directory
      // holding the socket is what keeps strangers out during that moment.
      await chmod(o.path, o.mode)
    } catch (err) {
      await new Promise((resolve) => this.#server.close(resolve))
      throw err
    }
    this.#log.info({ path: o.path, mode: `0${o.mode.toString(8)}` }, 'listening')
    return { host: 'unix', port: 0, path: o.path }
  }

  #bind(where: { host: string; port: number } | { path: string }): Promise<void> {
    const server = this.#server
    return new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(where, () => {
        server.off('error', reject)
        server.on('error', (err) => this.#log.error({ err: describeError(err) }, 'listener error'))
        resolve()
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
    // For a unix socket, closing the server also unlinks its file (libuv does it).
    await serverClosed
    this.#log.info('closed')
  }

  #accept(socket: Socket): void {
    if (this.#closing !== undefined || !this.#admission.admit(socket, socket.remoteAddress)) {
      socket.on('error', () => undefined)
      socket.destroy()
      return
    }
    const conn = new Connection(socket, this.#wire, this.#ctx, () => this.#admission.started(socket))
    this.#conns.add(conn)
    void conn.closed.then(() => {
      this.#conns.delete(conn)
      this.#admission.release(socket)
    })
  }
}

/** sockaddr_un holds 108 bytes with the NUL; Node silently binds a truncated path beyond that. */
const MAX_SOCKET_PATH_BYTES = 107

/** How long an existing socket may take to accept a probe connection before it counts as in use. */
const PROBE_TIMEOUT_MS = 1000

/**
 * Checks the options and makes `path` free for bind(): nothing there, or a socket nobody answers
 * on (left by a run that ended without cleaning up), which is removed. A path that is not a
 * socket, or a socket that still accepts connections, is never touched: the error says why.
 */
async function clearStaleSocket(path: string, mode: number): Promise<void> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new Error(`unix socket path ${path} is longer than ${MAX_SOCKET_PATH_BYTES} bytes`)
  }
  // chmod would take higher bits (setuid, or anything masked off) without complaint.
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw new Error(`unix socket mode ${mode} is not within 0 to 0o777`)
  let isSocket: boolean
  try {
    isSocket = (await lstat(path)).isSocket()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    // Bind would report a missing directory as EACCES (libuv maps it); name the real problem.
    await stat(dirname(path))
    return
  }
  if (!isSocket) throw new Error(`${path} exists and is not a socket; refusing to replace it`)
  const inUse = await probe(path)
  if (inUse !== undefined) throw Object.assign(new Error(`${path} may be in use (${inUse}); refusing to replace it`), { code: 'EADDRINUSE' })
  await rm(path, { force: true })
}

/**
 * Connects to an existing socket: undefined when it is stale (ECONNREFUSED: nobody listens) or
 * already gone, otherwise why it must be left alone.
 */
function probe(path: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ path })
    const done = (inUse: string | undefined) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(inUse)
    }
    const timer = setTimeout(() => done('a connection attempt did not complete'), PROBE_TIMEOUT_MS)
    socket.once('connect', () => done('another process accepts connections on it'))
    socket.on('error', (err: NodeJS.ErrnoException) =>
      done(err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? undefined : `connecting failed: ${err.code ?? err.message}`),
    )
  })
}
