// Postfix socketmap_table(5) codec: netstring requests `<name> <key>`, netstring replies.
//
// Limits (cited by the README):
// - Request payload: at most `maxRequestBytes` bytes (config `limits.maxRequestBytes`, default
//   16384). A larger declared length is answered `PERM request too large`; anything that is not
//   a netstring, or whose payload has no space or an empty map name, is answered
//   `PERM malformed request`. Either way the caller then closes the connection.
// - The payload is split at the FIRST space only: keys may contain spaces. Name and key are raw
//   bytes; the key is decoded as strict UTF-8 and becomes null when invalid (the lookup answers
//   that as a miss). Map names are ASCII, so an invalid name is decoded lossily and simply
//   matches no map.
// - Reply payload: at most 100000 bytes, Postfix's fixed limit. A found value that would exceed
//   it is answered `TEMP value too long` instead, never truncated.
// - `OK <value>` always carries a value: Postfix reads a bare `OK` as not found, so an empty
//   value is answered as a temporary failure rather than silently turning into a miss.
// - Reasons (TEMP/PERM) have control characters replaced by spaces, because Postfix logs them
//   verbatim, and are cut to 500 characters.

import type { Answer } from '../resolve/answer.js'
import { NetstringDecoder, encodeNetstring, type NetstringError } from './netstring.js'

export const SOCKETMAP_MAX_REPLY_BYTES = 100_000
const MAX_REASON_CHARS = 500

export interface SocketmapRequest {
  readonly map: string
  /** Null when the key bytes are not valid UTF-8. */
  readonly key: string | null
}

export type SocketmapItem =
  | { readonly type: 'request'; readonly request: SocketmapRequest }
  | { readonly type: 'error'; readonly error: NetstringError }

const SPACE = 0x20
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const lossyUtf8 = new TextDecoder('utf-8', { ignoreBOM: true })

export function parseSocketmapRequest(payload: Buffer): SocketmapRequest | undefined {
  const sp = payload.indexOf(SPACE)
  if (sp <= 0) return undefined
  const map = lossyUtf8.decode(payload.subarray(0, sp))
  let key: string | null
  try {
    key = strictUtf8.decode(payload.subarray(sp + 1))
  } catch {
    key = null
  }
  return { map, key }
}

/** Incremental request decoder: feed arbitrary chunks, pull requests. Never throws. */
export class SocketmapDecoder {
  readonly #frames: NetstringDecoder
  #failed = false

  constructor(maxRequestBytes: number) {
    this.#frames = new NetstringDecoder(maxRequestBytes)
  }

  get pendingBytes(): number {
    return this.#failed ? 0 : this.#frames.pendingBytes
  }

  push(chunk: Buffer): void {
    if (!this.#failed) this.#frames.push(chunk)
  }

  /** The next request, an error (once, then nothing more), or undefined when more bytes are needed. */
  next(): SocketmapItem | undefined {
    if (this.#failed) return undefined
    const item = this.#frames.next()
    if (item === undefined) return undefined
    if (item.type === 'error') {
      this.#failed = true
      return item
    }
    const request = parseSocketmapRequest(item.payload)
    if (request === undefined) {
      this.#failed = true
      return { type: 'error', error: 'malformed' }
    }
    return { type: 'request', request }
  }
}

export function cleanReason(reason: string, fallback: string): string {
  const text = reason.replace(/\p{Cc}/gu, ' ').trim()
  return text === '' ? fallback : text.slice(0, MAX_REASON_CHARS)
}

/** The reply payload (without netstring framing) for an answer. */
export function socketmapReplyPayload(answer: Answer): string {
  switch (answer.outcome) {
    case 'found': {
      if (answer.value === '') return 'TEMP empty value'
      const reply = `OK ${answer.value}`
      return Buffer.byteLength(reply, 'utf8') > SOCKETMAP_MAX_REPLY_BYTES ? 'TEMP value too long' : reply
    }
    case 'notfound':
      return 'NOTFOUND '
    case 'temp':
      return `TEMP ${cleanReason(answer.reason, 'temporary failure')}`
    case 'perm':
      return `PERM ${cleanReason(answer.reason, 'configuration error')}`
  }
}

export function encodeSocketmapReply(answer: Answer): Buffer {
  return encodeNetstring(socketmapReplyPayload(answer))
}

export function socketmapErrorReply(error: NetstringError): Buffer {
  return encodeNetstring(error === 'too-large' ? 'PERM request too large' : 'PERM malformed request')
}
