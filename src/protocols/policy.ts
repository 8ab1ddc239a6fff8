// Postfix SMTP access policy delegation codec (SMTPD_POLICY_README, protocols.md §3):
// requests are `name=value\n` lines ended by an empty line, replies are `action=<text>\n\n`.
//
// Limits and policy (cited by the README):
// - A request (every line up to and including the empty line) is at most `maxRequestBytes`
//   bytes (config `limits.maxRequestBytes`, default 16384; Postfix 3.7 sends about 700). It is
//   `too-large` as soon as the bytes buffered for it exceed the limit, so a request of exactly
//   `maxRequestBytes` is accepted and nothing beyond the limit is ever held.
// - Each line is split at its FIRST `=`: values may contain `=` and may be empty. A line without
//   `=`, with an empty name, or with a NUL byte anywhere is `malformed`, detected as soon as the
//   line is complete. There is no escaping in this protocol, so nothing else is rejected.
// - Lines end at LF. A CR before it belongs to the value: Postfix never sends CR, and stripping
//   it would accept input no Postfix produces.
// - Names and values are decoded as strict UTF-8. A value that is not valid UTF-8 arrives as
//   null, so no check can be fooled by a lossy decoding; a name that is not valid UTF-8 is
//   `malformed` (Postfix's names are ASCII).
// - Repeated names: the last value wins. Unknown names are kept; the engine ignores what it does
//   not use. An empty line alone is a request with no attributes, which the engine answers.
// - Errors have no reply: the server closes the connection without one (policyErrorReply is
//   empty). Postfix treats that as a failed try, reconnects after
//   smtpd_policy_service_retry_delay (1 s) up to smtpd_policy_service_try_limit (2) tries, then
//   applies smtpd_policy_service_default_action (`451 4.3.5 Server configuration problem`):
//   the mail is deferred, never rejected. After an error the decoder yields nothing more,
//   because a broken stream has no next request boundary to find.
// - Reply: the action has CR, LF and NUL replaced by spaces (each would end or corrupt the
//   reply) and is cut to at most 4000 bytes at a UTF-8 character boundary; Postfix reads
//   attribute values of up to 8192 bytes, and with smtputf8_enable=yes wants valid UTF-8.

import type { PolicyRequest } from '../policy/types.js'
import type { DecodedItem, RequestDecoder, RequestError } from './decoder.js'
import { BufferedDecoder } from './buffered-decoder.js'

export const POLICY_MAX_ACTION_BYTES = 4000

const LF = 0x0a
const NUL = 0x00
const EQUALS = 0x3d
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function decodeStrict(bytes: Buffer): string | null {
  try {
    return strictUtf8.decode(bytes)
  } catch {
    return null
  }
}

/** Incremental request decoder: feed arbitrary chunks, pull requests. Never throws. */
export class PolicyDecoder extends BufferedDecoder implements RequestDecoder<PolicyRequest> {
  /** Offset in buf of the first line not yet parsed into #attrs. */
  #lineStart = 0
  /** How far buf has been searched for LF, so a line trickling in is searched once, not per chunk. */
  #scanned = 0
  /** Attributes of the lines of the current request parsed so far. */
  #attrs = new Map<string, string | null>()

  constructor(maxRequestBytes: number) {
    super(maxRequestBytes)
  }

  /** The next request, an error (once, then nothing more), or undefined when more bytes are needed. */
  next(): DecodedItem<PolicyRequest> | undefined {
    if (this.failed) return undefined
    const buf = this.buf
    for (;;) {
      const nl = buf.indexOf(LF, Math.max(this.#lineStart, this.#scanned))
      if (nl < 0) {
        this.#scanned = buf.length
        return buf.length > this.max ? this.#fail('too-large') : undefined
      }
      // The request so far spans nl + 1 bytes; checked before the line, so the same input gives
      // the same error however it was chunked.
      if (nl >= this.max) return this.#fail('too-large')
      if (nl === this.#lineStart) {
        const request: PolicyRequest = this.#attrs
        this.consume(nl + 1)
        this.#lineStart = 0
        this.#scanned = 0
        this.#attrs = new Map()
        return { type: 'request', request }
      }
      if (!this.#addLine(buf.subarray(this.#lineStart, nl))) return this.#fail('malformed')
      this.#lineStart = nl + 1
    }
  }

  #addLine(line: Buffer): boolean {
    const eq = line.indexOf(EQUALS)
    if (eq <= 0 || line.includes(NUL)) return false
    const name = decodeStrict(line.subarray(0, eq))
    if (name === null) return false
    this.#attrs.set(name, decodeStrict(line.subarray(eq + 1)))
    return true
  }

  #fail(error: RequestError): DecodedItem<PolicyRequest> {
    this.#lineStart = 0
    this.#scanned = 0
    this.#attrs = new Map()
    return this.fail(error)
  }
}

/** The action bytes as sent: no line breaks or NULs, at most POLICY_MAX_ACTION_BYTES, whole characters. */
function actionBytes(action: string): Buffer {
  const bytes = Buffer.from(action.replace(/[\r\n\0]/g, ' '), 'utf8')
  if (bytes.length <= POLICY_MAX_ACTION_BYTES) return bytes
  let end = POLICY_MAX_ACTION_BYTES
  // Back up over continuation bytes (10xxxxxx) to the first byte of the character that would be split.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--
  return bytes.subarray(0, end)
}

export function encodePolicyReply(action: string): Buffer {
  return Buffer.concat([Buffer.from('action=', 'latin1'), actionBytes(action), Buffer.from('\n\n', 'latin1')])
}

/** Nothing: a bad request is answered by closing, which Postfix retries and then defers (see above). */
export function policyErrorReply(_error: RequestError): Buffer {
  return Buffer.alloc(0)
}
