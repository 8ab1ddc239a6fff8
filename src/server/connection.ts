// One client connection of a listener: decode requests, answer them strictly in order and one at
// a time, and close on protocol errors, timeouts or shutdown. Everything protocol-specific,
// including the business logic that makes a reply, comes in through a Wire.

import type { Socket } from 'node:net'
import { describeError } from '../errors.js'
import { requestContext, runWithRequestIds, type Logger } from '../log.js'
import type { DecodedItem, RequestDecoder, RequestError } from '../protocols/decoder.js'
import type { ListenerLimits } from './options.js'

/** What a protocol plugs into the generic listener. */
export interface Wire<R> {
  decoder(maxRequestBytes: number): RequestDecoder<R>
  /**
   * The reply bytes for one request. Meant never to reject: a failure should become the
   * protocol's own temporary answer. If it does reject, the connection closes without a reply,
   * which every Postfix client treats as a temporary error and retries.
   */
  reply(request: R): Promise<Buffer>
  /**
   * The reply bytes when they can be had synchronously (a fresh cached answer), else undefined,
   * having started nothing: the connection then calls reply(). Optional; the same contract
   * otherwise (a throw closes the connection without a reply).
   */
  replyNow?(request: R): Buffer | undefined
  /** The reply to a malformed or oversized request, sent before closing (may be empty). */
  errorReply(error: RequestError): Buffer
}

export interface ConnectionContext {
  readonly logger: Logger
  readonly limits: ListenerLimits
}

/**
 * Decoded requests held per connection before reading pauses. Postfix never pipelines; this
 * only bounds the memory a pipelining client can make us hold.
 */
const QUEUE_LIMIT = 16

/**
 * After the final reply and our FIN, keep reading (and discarding) this long. Closing a socket
 * with unread input makes the kernel send RST, which can destroy the reply before the peer
 * reads it: exactly the `request too large` case.
 */
const LINGER_MS = 2000

/** Numbers connections across all listeners of the process, for the `conn` id in logs. */
let connectionCount = 0

export class Connection<R> {
  /** Resolves once the socket is fully closed. */
  readonly closed: Promise<void>
  readonly #socket: Socket
  readonly #wire: Wire<R>
  readonly #ctx: ConnectionContext
  readonly #log: Logger
  readonly #decoder: RequestDecoder<R>
  readonly #queue: DecodedItem<R>[] = []
  /** A request is being answered (lookup or reply write in progress). */
  #busy = false
  /** No more requests will be answered: final reply sent, or the socket is gone. */
  #ending = false
  #draining = false
  #peerEnded = false
  #pausedFull = false
  #idleTimer: NodeJS.Timeout | undefined
  #requestTimer: NodeJS.Timeout | undefined
  /** Runs until the first request is complete; then undefined for good. */
  #firstRequestTimer: NodeJS.Timeout | undefined
  readonly #onFirstRequest: (() => void) | undefined
  readonly #id = ++connectionCount
  /** Requests answered or being answered on this connection: the `req` id in logs. */
  #requests = 0

  /** `onFirstRequest` runs once, when the first complete request has arrived. */
  constructor(socket: Socket, wire: Wire<R>, ctx: ConnectionContext, onFirstRequest?: () => void) {
    this.#socket = socket
    this.#wire = wire
    this.#ctx = ctx
    this.#onFirstRequest = onFirstRequest
    // Unix-socket peers (the dict listener) have no address.
    this.#log = ctx.logger.child({ conn: this.#id, peer: socket.remoteAddress === undefined ? 'unix' : `${socket.remoteAddress}:${socket.remotePort}` })
    this.#decoder = wire.decoder(ctx.limits.maxRequestBytes)
    let closed!: () => void
    this.closed = new Promise((resolve) => (closed = resolve))
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    socket.on('end', () => this.#onEnd())
    socket.on('error', (err: NodeJS.ErrnoException) => this.#log.debug({ code: err.code, err: err.message }, 'socket error'))
    socket.on('close', () => {
      this.#ending = true
      this.#clearTimers()
      closed()
    })
    // Every peer we serve writes its request as soon as it has connected; a connection that has
    // not completed one soon after holds a slot for nothing (the idle timeout is far longer: it
    // is for clients that keep connections between lookups).
    this.#firstRequestTimer = setTimeout(() => {
      this.#log.debug({ ms: ctx.limits.firstRequestTimeoutMs }, 'no complete request in time after connecting; closing')
      this.#finish()
    }, ctx.limits.firstRequestTimeoutMs)
    this.#armTimers()
  }

  /** Shutdown: close at the first moment no request is in flight; requests not yet started are dropped. */
  drain(): void {
    this.#draining = true
    if (!this.#busy) this.#finish()
  }

  destroy(): void {
    this.#socket.destroy()
  }

  #onData(chunk: Buffer): void {
    if (this.#ending) return
    this.#decoder.push(chunk)
    this.#fill()
    void this.#pump()
  }

  #onEnd(): void {
    this.#peerEnded = true
    // A half-received request can never complete now; requests already received still get replies.
    if (!this.#busy && this.#queue.length === 0) this.#finish()
  }

  /** Moves decoded requests into the queue, pausing the socket when the queue is full. */
  #fill(): void {
    let got = false
    while (this.#queue.length < QUEUE_LIMIT) {
      const item = this.#decoder.next()
      if (item === undefined) break
      this.#queue.push(item)
      got = true
      if (item.type === 'request' && this.#firstRequestTimer !== undefined) this.#firstRequestDone()
    }
    // The request timeout runs per request: a completed one stops it, the next restarts it.
    if (got) this.#clearRequestTimer()
    if (this.#queue.length >= QUEUE_LIMIT && !this.#pausedFull) {
      this.#pausedFull = true
      this.#socket.pause()
    }
    this.#armTimers()
  }

  async #pump(): Promise<void> {
    if (this.#busy) return
    this.#busy = true
    try {
      for (;;) {
        if (this.#ending) return
        const item = this.#queue.shift()
        if (item === undefined) break
        if (this.#pausedFull) {
          this.#pausedFull = false
          this.#socket.resume()
          this.#fill()
        }
        this.#armTimers()
        if (item.type === 'error') {
          this.#log.debug({ error: item.error }, 'bad request; closing')
          this.#finish(this.#wire.errorReply(item.error))
          return
        }
        let reply: Buffer | undefined
        try {
          // Lines logged while answering (lookup, policy, failures) carry conn and req. A reply
          // had synchronously needs no await and no AsyncLocalStorage (see runWithRequestIds).
          const ids = { conn: this.#id, req: ++this.#requests }
          const wire = this.#wire
          if (wire.replyNow !== undefined) reply = runWithRequestIds(ids, () => wire.replyNow!(item.request))
          reply ??= await requestContext.run(ids, () => wire.reply(item.request))
        } catch (err) {
          this.#log.error({ err: describeError(err) }, 'request failed; closing without a reply')
          this.#finish()
          return
        }
        // The peer may have gone while we waited; 'close' can lag behind destroy by a tick.
        if (this.#ending || this.#socket.destroyed) return
        if (!this.#socket.write(reply)) await this.#writable()
        if (this.#draining) {
          this.#finish()
          return
        }
      }
      if (this.#peerEnded) this.#finish()
    } finally {
      this.#busy = false
      this.#armTimers()
    }
  }

  /** Waits until the reply is flushed; a peer that stops reading replies loses the connection. */
  #writable(): Promise<void> {
    const socket = this.#socket
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        socket.off('drain', done)
        socket.off('close', done)
        resolve()
      }
      const timer = setTimeout(() => {
        this.#log.debug('peer does not read replies; closing')
        socket.destroy()
      }, this.#ctx.limits.requestTimeoutMs)
      socket.once('drain', done)
      socket.once('close', done)
    })
  }

  /** Sends an optional last reply, half-closes, and lingers (discarding input) before destroying. */
  #finish(lastReply?: Buffer): void {
    if (this.#ending) return
    this.#ending = true
    this.#clearTimers()
    this.#queue.length = 0
    const socket = this.#socket
    if (socket.destroyed) return
    if (lastReply === undefined) socket.end()
    else socket.end(lastReply)
    socket.resume()
    const linger = setTimeout(() => socket.destroy(), LINGER_MS)
    socket.once('close', () => clearTimeout(linger))
  }

  #armTimers(): void {
    if (this.#ending) return this.#clearTimers()
    // With the queue not full every complete request has been taken, so pending bytes are a partial one.
    const partial = !this.#pausedFull && this.#decoder.pendingBytes > 0
    if (!partial) this.#clearRequestTimer()
    else
      this.#requestTimer ??= setTimeout(() => {
        this.#log.debug('request not completed in time; closing')
        this.#finish()
      }, this.#ctx.limits.requestTimeoutMs)

    const idle = !this.#busy && this.#queue.length === 0 && this.#decoder.pendingBytes === 0
    if (!idle) this.#clearIdleTimer()
    else
      this.#idleTimer ??= setTimeout(() => {
        this.#log.debug('idle; closing')
        this.#finish()
      }, this.#ctx.limits.idleTimeoutMs)
  }

  #firstRequestDone(): void {
    clearTimeout(this.#firstRequestTimer)
    this.#firstRequestTimer = undefined
    this.#onFirstRequest?.()
  }

  #clearRequestTimer(): void {
    clearTimeout(this.#requestTimer)
    this.#requestTimer = undefined
  }

  #clearIdleTimer(): void {
    clearTimeout(this.#idleTimer)
    this.#idleTimer = undefined
  }

  /** Only once the connection is ending: the first-request timer is never re-armed. */
  #clearTimers(): void {
    this.#clearRequestTimer()
    this.#clearIdleTimer()
    clearTimeout(this.#firstRequestTimer)
    this.#firstRequestTimer = undefined
  }
}
