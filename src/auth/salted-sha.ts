// Dovecot's salted SHA schemes, {SSHA} (SHA-1), {SSHA256} and {SSHA512}: the encoding (base64
// unless the prefix says `.HEX`) of digest(password || salt) || salt. The salt may have any
// length, but at least one byte: Dovecot calls a value no longer than the digest "too short".

import { hash, randomBytes } from 'node:crypto'
import { decodeValue, equalDigests, UnsupportedSchemeError, type ValueEncoding } from './scheme-support.js'

export type SaltedShaScheme = 'SSHA' | 'SSHA256' | 'SSHA512'

const DIGESTS: Record<SaltedShaScheme, { readonly alg: string; readonly size: number }> = {
  SSHA: { alg: 'sha1', size: 20 },
  SSHA256: { alg: 'sha256', size: 32 },
  SSHA512: { alg: 'sha512', size: 64 },
}

/** Dovecot makes 4-byte salts; more costs nothing and rules out precomputed tables for good. */
const SALT_BYTES = 16

export function verifySaltedSha(scheme: SaltedShaScheme, encoding: ValueEncoding, value: string, key: Uint8Array): boolean {
  const raw = decodeValue(scheme, encoding, value)
  const { alg, size } = DIGESTS[scheme]
  if (raw.length <= size) throw new UnsupportedSchemeError(scheme, 'value too short to hold a digest and a salt')
  const digest = hash(alg, Buffer.concat([key, raw.subarray(size)]), 'buffer')
  return equalDigests(digest, raw.subarray(0, size))
}

/** The value after the prefix, base64 (Dovecot's default for these schemes). */
export function hashSaltedSha(scheme: SaltedShaScheme, key: Uint8Array): string {
  const salt = randomBytes(SALT_BYTES)
  const digest = hash(DIGESTS[scheme].alg, Buffer.concat([key, salt]), 'buffer')
  return Buffer.concat([digest, salt]).toString('base64')
}
