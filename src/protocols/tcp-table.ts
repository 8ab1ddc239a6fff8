// Postfix tcp_table(5) codec: `get <hex-quoted key>\n` requests, `<code> <hex-quoted text>\n` replies.
//
// Limits (cited by the README):
// - Request line: at most `maxRequestBytes` bytes before the `\n` (config `limits.maxRequestBytes`,
//   default 16384), counted on the wire, i.e. after %XX-encoding. A longer line is answered
//   `400 request too large`; a line that is not `get <key>` (exact lower-case `get` and one space),
//   or whose key has a `%` not followed by two hex digits, is answered `400 malformed request`.
//   Either way the caller then closes the connection.
// - Lines end at LF. A CR is part of the key: Postfix would have sent it as `%0D`.
// - The key is %XX-decoded byte-wise (hex digits in either case), then decoded as strict UTF-8;
//   invalid UTF-8 gives a null key (the lookup answers that as a miss).
// - Replies: found `200`, not found `500`, temporary and permanent failures both `400`
//   (tcp_table has no permanent-error code). Text is quoted exactly like Postfix's hex_quote():
//   `%`, whitespace, control characters and every byte >= 0x80 become upper-case `%XX`, which
//   also keeps control characters in reasons off the wire.
// - A reply is at most 4096 bytes including the `\n` (Postfix's client limit). A found value that
//   would exceed it is answered `400 value%20too%20long`; a long reason falls back to a short one.
// - A found answer with an empty value is answered `400`: Postfix treats an empty value as not
//   found, and an error must never turn into a miss.

import type { Answer } from '../resolve/answer.js'
import { BufferedDecoder } from './buffered-decoder.js'

export const TCP_TABLE_MAX_REPLY_BYTES = 4096

export type TcpTableError = 'malformed' | 'too-large'

export interface TcpTableRequest {
  /** Null when the decoded key bytes are not valid UTF-8. */
  readonly key: string | null
}

export type TcpTableItem =
  | { readonly type: 'request'; readonly request: TcpTableRequest }
  | { readonly type: 'error'; readonly error: TcpTableError }

const LF = 0x0a
const PERCENT = 0x25
const GET = Buffer.from('get ', 'latin1')
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function hexValue(c: number | undefined): number {
  if (c === undefined) return -1
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10
  return -1
}

/** Postfix hex_unquote(): `%XX` (either case) to one byte, other bytes as they are; undefined on a bad `%`. */
export function hexUnquote(text: Buffer): Buffer | undefined {
  const out = Buffer.allocUnsafe(text.length)
  let n = 0
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (c !== PERCENT) {
      out[n++] = c
      continue
    }
    const hi = hexValue(text[i + 1])
    const lo = hexValue(text[i + 2])
    if (hi < 0 || lo < 0) return undefined
    out[n++] = hi * 16 + lo
    i += 2
  }
  return out.subarray(0, n)
}

/** Postfix hex_quote(): bytes 0x21-0x7e except `%` pass, all others become upper-case `%XX`. */
export function hexQuote(value: string | Buffer): string {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value
  let out = ''
  for (const c of bytes) {
    out += c > 0x20 && c < 0x7f && c !== PERCENT ? String.fromCharCode(c) : `%${c < 16 ? '0' : ''}${c.toString(16).toUpperCase()}`
  }
  return out
}

export function parseTcpTableRequest(line: Buffer): TcpTableRequest | undefined {
  if (line.length < GET.length || !line.subarray(0, GET.length).equals(GET)) return undefined
  const raw = hexUnquote(line.subarray(GET.length))
  if (raw === undefined) return undefined
  try {
    return { key: strictUtf8.decode(raw) }
  } catch {
    return { key: null }
  }
}

/** Incremental request decoder: feed arbitrary chunks, pull requests. Never throws. */
export class TcpTableDecoder extends BufferedDecoder {
  /** How far buf has been searched for LF already, so a slowly growing line is scanned once. */
  #scanned = 0

  constructor(maxRequestBytes: number) {
    super(maxRequestBytes)
  }

  /** The next request, an error (once, then nothing more), or undefined when more bytes are needed. */
  next(): TcpTableItem | undefined {
    if (this.failed) return undefined
    const nl = this.buf.indexOf(LF, this.#scanned)
    if (nl < 0) {
      this.#scanned = this.buf.length
      return this.buf.length > this.max ? this.#fail('too-large') : undefined
    }
    if (nl > this.max) return this.#fail('too-large')
    const request = parseTcpTableRequest(this.buf.subarray(0, nl))
    this.consume(nl + 1)
    this.#scanned = 0
    return request === undefined ? this.#fail('malformed') : { type: 'request', request }
  }

  #fail(error: TcpTableError): TcpTableItem {
    return this.fail(error)
  }
}

function line(code: 200 | 400 | 500, text: string): string {
  return `${code} ${hexQuote(text)}\n`
}

function fits(reply: string): boolean {
  // hexQuote output is ASCII, so characters are bytes.
  return reply.length <= TCP_TABLE_MAX_REPLY_BYTES
}

/** The reply line (with its `\n`) for an answer. */
export function tcpTableReplyLine(answer: Answer): string {
  switch (answer.outcome) {
    case 'found': {
      if (answer.value === '') return line(400, 'empty value')
      // Quoting only grows the text, so a value already over the limit need not be quoted.
      if (Buffer.byteLength(answer.value, 'utf8') >= TCP_TABLE_MAX_REPLY_BYTES) return line(400, 'value too long')
      const reply = line(200, answer.value)
      return fits(reply) ? reply : line(400, 'value too long')
    }
    case 'notfound': {
      const reply = line(500, answer.reason || 'not found')
      return fits(reply) ? reply : line(500, 'not found')
    }
    case 'temp':
    case 'perm': {
      const reply = line(400, answer.reason || 'temporary failure')
      return fits(reply) ? reply : line(400, 'temporary failure')
    }
  }
}

export function encodeTcpTableReply(answer: Answer): Buffer {
  return Buffer.from(tcpTableReplyLine(answer), 'latin1')
}

export function tcpTableErrorReply(error: TcpTableError): Buffer {
  return Buffer.from(line(400, error === 'too-large' ? 'request too large' : 'malformed request'), 'latin1')
}
