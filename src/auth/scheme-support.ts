// What every password scheme module shares: the error for stored values we cannot verify, the
// constant-time comparison, and strict decoders. Strict, because Node's own base64 decoder
// skips characters it does not know, which would turn a corrupted stored value into a
// plausible-looking hash instead of the error the operator needs to see.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { ErrorCodes, MailhostdError } from '../errors.js'

/**
 * A stored password value in a scheme mailhostd does not know, or malformed for its scheme.
 * Never a match: callers answer with a temporary failure and log it. The message names the
 * scheme and what is wrong, never the stored value or the password.
 */
export class UnsupportedSchemeError extends MailhostdError {
  /** The scheme as written in the prefix (upper-cased), when there was a readable one. */
  readonly scheme: string | undefined
  /** What is wrong with the value, as in the message (it crosses from a worker thread with the scheme). */
  readonly problem: string

  constructor(scheme: string | undefined, problem: string) {
    // Permanent (the code's declaration): someone must fix the stored value, waiting does not help.
    super(ErrorCodes.PASSWORD_SCHEME, scheme === undefined ? `stored password: ${problem}` : `stored password {${scheme}}: ${problem}`)
    this.name = 'UnsupportedSchemeError'
    this.scheme = scheme
    this.problem = problem
  }
}

/** Equal-length secrets (digests of a known size): the plain constant-time comparison. */
export function equalDigests(a: Uint8Array, b: Uint8Array): boolean {
  // Lengths are fixed by the scheme, not secret; unequal ones are a bug upstream, and
  // timingSafeEqual would throw on them anyway.
  if (a.length !== b.length) return false
  return timingSafeEqual(a, b)
}

// Per-process key: makes the MACs below useless to anyone who sees them (nobody should).
const MAC_KEY = randomBytes(32)

/**
 * Secrets of any length (cleartext passwords): compares keyed MACs of both sides, which have
 * equal lengths, so the time depends on neither where they first differ nor whether their
 * lengths match.
 */
export function equalSecrets(a: Uint8Array, b: Uint8Array): boolean {
  const mac = (v: Uint8Array) => createHmac('sha256', MAC_KEY).update(v).digest()
  return timingSafeEqual(mac(a), mac(b))
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/**
 * Standard base64 with its padding, as Dovecot reads it: whitespace (line breaks an LDAP tool
 * may have inserted) is skipped, anything else outside the alphabet is an error.
 */
function decodeBase64(text: string): Buffer | undefined {
  const compact = text.replace(/[ \t\r\n]/g, '')
  return BASE64.test(compact) ? Buffer.from(compact, 'base64') : undefined
}

/** Unpadded base64 (PHC strings): the length must still be possible (not 1 mod 4). */
export function decodeBase64Unpadded(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]*$/.test(text) || text.length % 4 === 1) return undefined
  return Buffer.from(text, 'base64')
}

/** Hex of either case, an even number of digits. */
function decodeHex(text: string): Buffer | undefined {
  return /^(?:[0-9a-fA-F]{2})*$/.test(text) ? Buffer.from(text, 'hex') : undefined
}

/** How a binary value is written after the prefix: Dovecot's `.HEX` and `.B64` suffixes. */
export type ValueEncoding = 'base64' | 'hex'

/** The bytes of a stored value, or UnsupportedSchemeError naming `scheme` when undecodable. */
export function decodeValue(scheme: string, encoding: ValueEncoding, value: string): Buffer {
  const raw = encoding === 'hex' ? decodeHex(value) : decodeBase64(value)
  if (raw === undefined) throw new UnsupportedSchemeError(scheme, `value is not ${encoding}`)
  return raw
}
