// Netstrings (`<decimal byte length>:<bytes>,`), the framing of Postfix socketmap_table(5).
//
// Limits and policy (cited by the README):
// - The length counts bytes, never characters.
// - The length is plain ASCII decimal with NO leading zeros (djb's netstring spec); `0:,` is the
//   only length that starts with `0`. Postfix never sends leading zeros, so `007:` is malformed.
// - A declared length above `maxPayloadBytes` is rejected as `too-large` as soon as its digits
//   exceed the limit, before any payload is buffered; a payload of exactly `maxPayloadBytes`
//   is accepted.
// - Anything else (no digits, a non-digit before `:`, a missing `,` after the payload) is
//   `malformed`.
// After an error the decoder yields nothing more: the caller answers once and closes, because
// there is no way to find the next frame boundary in a broken stream.

import { BufferedDecoder } from './buffered-decoder.js'

export type NetstringError = 'malformed' | 'too-large'

export type NetstringItem =
  | { readonly type: 'frame'; readonly payload: Buffer }
  | { readonly type: 'error'; readonly error: NetstringError }

const COLON = 0x3a
const COMMA = 0x2c
const ZERO = 0x30
const NINE = 0x39

export class NetstringDecoder extends BufferedDecoder {
  constructor(maxPayloadBytes: number) {
    super(maxPayloadBytes)
  }

  /** The next complete frame, an error (once), or undefined when more bytes are needed. */
  next(): NetstringItem | undefined {
    if (this.failed) return undefined
    const buf = this.buf
    let len = 0
    let i = 0
    for (; i < buf.length; i++) {
      const c = buf[i]!
      if (c < ZERO || c > NINE) break
      if (i === 1 && buf[0] === ZERO) return this.#fail('malformed')
      len = len * 10 + (c - ZERO)
      if (len > this.max) return this.#fail('too-large')
    }
    if (i === buf.length) return undefined
    if (i === 0 || buf[i] !== COLON) return this.#fail('malformed')
    const start = i + 1
    const end = start + len
    if (buf.length <= end) return undefined
    if (buf[end] !== COMMA) return this.#fail('malformed')
    // Copy, so a queued frame does not pin the whole receive buffer in memory.
    const payload = Buffer.from(buf.subarray(start, end))
    this.consume(end + 1)
    return { type: 'frame', payload }
  }

  #fail(error: NetstringError): NetstringItem {
    return this.fail(error)
  }
}

export function encodeNetstring(payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload
  return Buffer.concat([Buffer.from(`${body.length}:`, 'latin1'), body, Buffer.from(',', 'latin1')])
}
