// A small fixed set of LDAP connections, used round-robin, that heal by themselves: every
// operation first makes sure its connection is connected, upgraded (StartTLS) and bound, so a
// restarted or briefly unreachable server needs no intervention. Every failure leaves here as a
// DirectoryError with a log-safe message, and every call settles within connectTimeout + timeout.

import { connect as netConnect, isIP } from 'node:net'
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls'
import { Client, ResultCodeError, TimeLimitExceededError, type ClientOptions } from 'ldapts'
import { DirectoryError, ErrorCodes, describeError, type ErrorCode } from '../errors.js'
import type { Logger } from '../log.js'

export interface LdapPoolOptions {
  readonly url: string
  /** '' binds anonymously (that is, never sends a bind). */
  readonly bindDN: string
  readonly bindPassword: string
  readonly size: number
  /**
   * Replay the last bind after ldapts reconnects by itself (default true). Off for connections
   * that bind as users (password checks): the client would keep the last user's password.
   */
  readonly autoRebind?: boolean
  readonly timeoutMs: number
  readonly connectTimeoutMs: number
  readonly startTLS: boolean
  /** CA and verification settings for ldaps:// or StartTLS. */
  readonly tls: Pick<ConnectionOptions, 'ca' | 'rejectUnauthorized'>
}

/**
 * One connection and the state that makes it ready for an operation. With StartTLS it also
 * owns socket creation, because ldapts handles an upgraded connection badly in two ways (see
 * #gatedConnect and #watchedUpgrade), and both are dealt with here rather than trusted.
 */
class Slot {
  client: Client
  /** Set only while our own connect step runs (see #gatedConnect). */
  mayConnect = false
  preparing: Promise<void> | undefined
  /** When an operation on this connection last timed out (ms since epoch; 0: never). */
  timedOutAt = 0
  readonly #options: ClientOptions
  readonly #handshakeTimeoutMs: number
  #upgraded: TLSSocket | undefined
  #upgradeLost = false

  constructor(options: ClientOptions, startTLS: boolean, handshakeTimeoutMs: number) {
    this.#handshakeTimeoutMs = handshakeTimeoutMs
    this.#options = startTLS
      ? { ...options, createConnection: this.#gatedConnect, createSecureConnection: this.#watchedUpgrade }
      : options
    this.client = new Client({ ...this.#options })
  }

  /** The upgraded socket has closed, but the client still believes it is connected. */
  get upgradeLost(): boolean {
    return this.#upgradeLost
  }

  /** Replaces a client that can no longer notice its own connection is gone. */
  renew(): void {
    this.#upgraded = undefined
    this.#upgradeLost = false
    this.client = new Client({ ...this.#options })
  }

  // ldapts reconnects on its own when an operation finds the socket closed. After StartTLS that
  // reconnect would be plain text and unbound (it does not replay binds on upgraded sessions),
  // so queries would leak and ACL-filtered empty answers would pass for misses. Refusing any
  // socket we did not ask for turns that case into an error that the next operation heals.
  readonly #gatedConnect = ((port: number, host: string) => {
    if (!this.mayConnect) throw new Error('connection lost; not reconnecting without StartTLS')
    return netConnect(port, host)
  }) as typeof netConnect

  // ldapts keeps listening for "close" on the pre-upgrade socket, which never reports it, so a
  // dead StartTLS connection would look alive and swallow requests until each one timed out.
  // It also puts no limit on the handshake: a server that hangs in it would leave this
  // connection preparing forever, so the handshake gets the connect timeout.
  readonly #watchedUpgrade = ((options: ConnectionOptions) => {
    const socket = tlsConnect(options)
    socket.setTimeout(this.#handshakeTimeoutMs, () => socket.destroy(new Error('StartTLS handshake timed out')))
    socket.once('secureConnect', () => socket.setTimeout(0))
    this.#upgraded = socket
    socket.once('close', () => {
      if (this.#upgraded === socket) this.#upgradeLost = true
    })
    return socket
  }) as typeof tlsConnect
}

export class LdapPool {
  readonly #opts: LdapPoolOptions
  readonly #log: Logger
  /** host:port, for messages and logs (a URL could carry credentials). */
  readonly #server: string
  readonly #tlsOptions: ConnectionOptions
  /** What making a connection ready involves, for messages: "connect (StartTLS) and bind as ...". */
  readonly #prepareStep: string
  readonly #slots: Slot[] = []
  #next = 0
  #closed = false
  #healthy = true

  constructor(opts: LdapPoolOptions, logger: Logger) {
    this.#opts = opts
    this.#log = logger
    const url = new URL(opts.url)
    this.#server = url.host
    this.#prepareStep = `connect${opts.startTLS ? ' (StartTLS)' : ''}${opts.bindDN !== '' ? ` and bind as ${opts.bindDN}` : ''}`
    const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1')
    // SNI takes names only; an IP literal is still verified, against the certificate's IP SANs.
    this.#tlsOptions = { ...opts.tls, ...(isIP(hostname) === 0 ? { servername: hostname } : {}) }
    const clientOptions: ClientOptions = {
      url: opts.url,
      timeout: opts.timeoutMs,
      connectTimeout: opts.connectTimeoutMs,
      autoRebind: opts.autoRebind ?? true,
      // Passing TLS options to ldapts for ldap:// would make it speak TLS from the first byte.
      ...(url.protocol === 'ldaps:' ? { tlsOptions: this.#tlsOptions } : {}),
    }
    for (let i = 0; i < opts.size; i++) this.#slots.push(new Slot(clientOptions, opts.startTLS, opts.connectTimeoutMs))
  }

  /**
   * Runs `fn` on the next connection, made ready first. `operation` names it in errors and logs.
   * Throws DirectoryError(DIRECTORY_TIMEOUT) when the budget runs out or `signal` aborts.
   */
  async run<T>(operation: string, fn: (client: Client) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.#closed) throw new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, `LDAP ${this.#server}: directory closed`)
    if (signal?.aborted) throw this.#aborted(operation)
    const slot = this.#slots[this.#next++ % this.#slots.length]!
    // Which step failed or hung (connecting, binding, or the operation itself) goes into the error.
    let step = operation
    const work = (async () => {
      step = this.#prepareStep
      await this.#ready(slot)
      step = operation
      return fn(slot.client)
    })()
    try {
      const result = await this.#bounded(work, () => step, signal)
      this.#markHealthy()
      return result
    } catch (e) {
      const err = this.#toDirectoryError(step, e, slot)
      if (err.code === ErrorCodes.DIRECTORY_TIMEOUT) slot.timedOutAt = Date.now()
      this.#markFailed(err)
      throw err
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    await Promise.all(this.#slots.map((s) => s.client.unbind().catch(() => undefined)))
  }

  #ready(slot: Slot): Promise<void> {
    if (slot.upgradeLost && slot.preparing === undefined) slot.renew()
    const c = slot.client
    const ready = this.#opts.bindDN !== '' ? c.isBound : !this.#opts.startTLS || c.isConnected
    if (ready) return Promise.resolve()
    // Concurrent operations on one connection share a single connect-and-bind.
    slot.preparing ??= this.#connectAndBind(slot).finally(() => (slot.preparing = undefined))
    return slot.preparing
  }

  async #connectAndBind(slot: Slot): Promise<void> {
    const c = slot.client
    if (this.#opts.startTLS && !c.isConnected) {
      slot.mayConnect = true
      try {
        await c.startTLS({ ...this.#tlsOptions })
      } catch (e) {
        // A half-done upgrade leaves a plain connection behind; never let it carry a bind.
        await c.unbind().catch(() => undefined)
        throw e
      } finally {
        slot.mayConnect = false
      }
    }
    if (this.#opts.bindDN !== '') await c.bind(this.#opts.bindDN, this.#opts.bindPassword)
  }

  #bounded<T>(work: Promise<T>, step: () => string, signal: AbortSignal | undefined): Promise<T> {
    // A timeout of 0 means "none", as in ldapts; the caller's signal still applies.
    const budgetMs = this.#opts.timeoutMs === 0 ? 0 : this.#opts.connectTimeoutMs + this.#opts.timeoutMs
    return new Promise<T>((resolve, reject) => {
      const timer =
        budgetMs === 0
          ? undefined
          : setTimeout(
              () => reject(new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, `LDAP ${step()} on ${this.#server}: no answer within ${budgetMs} ms`)),
              budgetMs,
            )
      const onAbort = () => reject(this.#aborted(step()))
      signal?.addEventListener('abort', onAbort, { once: true })
      void work.then(resolve, reject).finally(() => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
      })
    })
  }

  #aborted(operation: string): DirectoryError {
    return new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, `LDAP ${operation} on ${this.#server}: aborted by the caller`)
  }

  #toDirectoryError(step: string, e: unknown, slot: Slot): DirectoryError {
    if (e instanceof DirectoryError) return e
    let reason = describeLdapError(e)
    // Defence in depth: no library or server message should ever echo the bind password.
    if (this.#opts.bindPassword !== '') reason = reason.split(this.#opts.bindPassword).join('[redacted]')
    // ldapts tears a connection down when one operation on it times out, failing the others
    // that were waiting on it as "connection closed": they hung just the same.
    const tornDownByTimeout =
      /Connection closed before message response/i.test(reason) &&
      Date.now() - slot.timedOutAt < this.#opts.connectTimeoutMs + this.#opts.timeoutMs
    const code: ErrorCode =
      tornDownByTimeout || e instanceof TimeLimitExceededError || /timed out|timeout|ETIMEDOUT/i.test(reason)
        ? ErrorCodes.DIRECTORY_TIMEOUT
        : ErrorCodes.DIRECTORY_UNAVAILABLE
    return new DirectoryError(code, `LDAP ${step} on ${this.#server} failed: ${reason}`, { cause: e })
  }

  // Log transitions, not every failed lookup: a dead directory under load would flood the log.
  #markFailed(err: DirectoryError) {
    if (this.#healthy) {
      this.#healthy = false
      this.#log.warn({ server: this.#server, code: err.code, reason: err.message }, 'LDAP directory unavailable')
    } else {
      this.#log.debug({ server: this.#server, code: err.code, reason: err.message }, 'LDAP operation failed')
    }
  }

  #markHealthy() {
    if (this.#healthy) return
    this.#healthy = true
    this.#log.info({ server: this.#server }, 'LDAP directory reachable again')
  }
}

// ldapts puts only the server's diagnostic text (often empty) and a hex code in the message; the
// class name says what happened (InvalidCredentialsError, NoSuchObjectError, ...).
function describeLdapError(e: unknown): string {
  if (!(e instanceof ResultCodeError)) return describeError(e)
  const diagnostic = e.message.replace(/\s*Code: 0x[0-9a-f]+$/i, '').trim()
  return `${e.name} (LDAP result ${e.code})${diagnostic ? `: ${diagnostic}` : ''}`
}
