// The Dovecot dict listener (protocols.md §7, docs/login.md "Dict protocol"): a unix socket on
// which Dovecot's `proxy:` dict client (auth-workers, doveadm) sends a handshake and then
// lookups, pipelined, and matches our replies to its commands strictly in order.
//
// Per connection:
// - The first line must be the `H` handshake, which gets no reply at all: Dovecot sends its
//   first command right behind it and would read any reply as that command's answer. A major
//   version other than 3 (Dovecot 2.4 sends 4) closes the connection with one warning, as the
//   real 2.3 server does; so does a second handshake, or a lookup before the first.
// - `L` lookups go to the DictService and get O, N or F. A key that is not valid UTF-8 cannot
//   name any mailbox and gets N without asking; a user field that is absent or not valid UTF-8
//   is passed as empty (the service routes by key). A service that rejects gets a generic F,
//   which Dovecot turns into a temporary failure (never "unknown user").
// - Iteration and transaction commands, which auth never sends, are refused without losing
//   step with the client (see encodeUnsupportedReply), with one warning per connection, since
//   they mean a dict user other than passdb/userdb was pointed at this socket.
// - Anything else, or a line over `limits.maxRequestBytes`, closes the connection without a
//   reply; Dovecot fails the command in flight and reconnects for the next one.

import { describeError } from '../errors.js'
import type { Logger } from '../log.js'
import type { DictService } from '../login/types.js'
import {
  DICT_PROTOCOL_MAJOR,
  DictDecoder,
  dictErrorReply,
  encodeDictReply,
  encodeUnsupportedReply,
  type DictRequest,
} from '../protocols/dict.js'
import type { DecodedItem, RequestDecoder, RequestError } from '../protocols/decoder.js'
import type { Wire } from './connection.js'
import { Listener } from './listener.js'
import type { LineServer, ListenerLimits } from './options.js'

export interface DictServerOptions {
  /** Socket path; Dovecot's URI ends the path at the first `:`, so it cannot contain one. */
  readonly path: string
  /** Permission bits of the socket file, e.g. 0o660; the auth-worker user needs write access. */
  readonly mode: number
  readonly logger: Logger
  readonly limits: ListenerLimits
  readonly dict: DictService
}

/** What Dovecot logs as the error when the service fails: it says where to look, nothing more. */
export const DICT_INTERNAL_FAILURE = 'mailhostd: internal error (see its log)'
const READ_ONLY = 'mailhostd: this dict only answers lookups'
const NO_REPLY = Buffer.alloc(0)

/** Per-connection protocol state, carried along with each request it let through. */
interface Session {
  warnedUnsupported: boolean
}

interface SessionRequest {
  readonly request: DictRequest
  readonly session: Session
}

/**
 * Wraps a connection's DictDecoder with the handshake rules, so a session error is an ordinary
 * decoder error and the connection closes the way it does for any bad line.
 */
class DictSessionDecoder implements RequestDecoder<SessionRequest> {
  readonly #lines: DictDecoder
  readonly #log: Logger
  readonly #session: Session = { warnedUnsupported: false }
  #greeted = false
  #failed = false

  constructor(maxRequestBytes: number, log: Logger) {
    this.#lines = new DictDecoder(maxRequestBytes)
    this.#log = log
  }

  get pendingBytes(): number {
    return this.#failed ? 0 : this.#lines.pendingBytes
  }

  push(chunk: Buffer): void {
    if (!this.#failed) this.#lines.push(chunk)
  }

  next(): DecodedItem<SessionRequest> | undefined {
    if (this.#failed) return undefined
    const item = this.#lines.next()
    if (item === undefined) return undefined
    if (item.type === 'error') return this.#fail(item.error)
    const request = item.request
    if (request.kind === 'hello') {
      // The real server knows no `H` command after the handshake and disconnects.
      if (this.#greeted) return this.#fail('malformed')
      if (request.major !== DICT_PROTOCOL_MAJOR) {
        this.#log.warn(
          { major: request.major, minor: request.minor },
          `dict client speaks protocol ${request.major}; mailhostd speaks ${DICT_PROTOCOL_MAJOR} (Dovecot 2.3)`,
        )
        return this.#fail('malformed')
      }
      this.#greeted = true
      this.#log.debug({ minor: request.minor, valueType: request.valueType, dict: request.dictName }, 'dict handshake')
    } else if (!this.#greeted) {
      return this.#fail('malformed')
    }
    return { type: 'request', request: { request, session: this.#session } }
  }

  #fail(error: RequestError): DecodedItem<SessionRequest> {
    this.#failed = true
    return { type: 'error', error }
  }
}

function dictWire(dict: DictService, log: Logger): Wire<SessionRequest> {
  return {
    decoder: (maxRequestBytes) => new DictSessionDecoder(maxRequestBytes, log),
    errorReply: dictErrorReply,
    async reply({ request, session }) {
      switch (request.kind) {
        case 'hello':
          return NO_REPLY
        case 'unsupported':
          if (!session.warnedUnsupported) {
            session.warnedUnsupported = true
            log.warn({ command: request.command }, 'dict client sent an iterate or write command; only lookups are served')
          }
          return encodeUnsupportedReply(request.command, READ_ONLY)
        case 'lookup':
          if (request.key === null) return encodeDictReply({ kind: 'notfound' })
          try {
            return encodeDictReply(await dict.lookup(request.key, request.user ?? ''))
          } catch (err) {
            // The service is meant never to reject; if it does, fail this lookup (Dovecot:
            // temporary failure) and keep the connection, which the next lookup can use.
            log.error({ err: describeError(err) }, 'dict lookup failed')
            return encodeDictReply({ kind: 'fail', reason: DICT_INTERNAL_FAILURE })
          }
      }
    },
  }
}

export function createDictServer(options: DictServerOptions): LineServer {
  if (options.path.includes(':')) {
    throw new Error(`dict socket path ${options.path} contains ":", which Dovecot's proxy: URI cannot express`)
  }
  const log = options.logger.child({ listener: 'dict' })
  return new Listener(dictWire(options.dict, log), options, log)
}
