// MD5-crypt, the crypt(3) method `$1$` (Poul-Henning Kamp's FreeBSD md5crypt): PostfixAdmin's
// historical default (`md5crypt`, stored without a prefix), iRedMail's SQL default before 0.9.0,
// and what many IndiMail and older Dovecot sites hold. It is weak by today's standards; it is here
// to verify the hashes those databases already have, never to make new ones for users.
//
// Written here, like sha-crypt.ts, because node:crypto has MD5 but not the construction. The npm
// packages for it were no better: apache-md5 and cryptmd5 hash the password as a JavaScript
// string (`'ascii'`/`'binary'` encodings, UTF-16 lengths), so a non-ASCII password gives another
// hash than crypt(3) and Dovecot; nano-md5 gets the bytes right but brings its own pure-JS MD5.

import { hash } from 'node:crypto'
import { equalDigests, UnsupportedSchemeError } from './scheme-support.js'

const MAGIC = '$1$'
const SALT_MAX = 8
const ROUNDS = 1000
/** crypt(3)'s base64 alphabet (not RFC 4648's order). */
const ALPHABET = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
/** The output's byte order: groups of three digest indexes, then byte 11 alone. */
const GROUPS: readonly (readonly [number, number, number])[] = [
  [0, 6, 12],
  [1, 7, 13],
  [2, 8, 14],
  [3, 9, 15],
  [4, 10, 5],
]

/**
 * crypt(3) with a `$1$` setting: the whole output string. The salt is what follows `$1$` up to
 * the next `$` or 8 characters, as glibc and libxcrypt read it; `salt` may be given bare or as a
 * whole setting (`$1$salt$...`).
 */
export function md5Crypt(key: Uint8Array, salt: string): string {
  const bare = salt.startsWith(MAGIC) ? salt.slice(MAGIC.length) : salt
  const s = bare.split('$', 1)[0]!.slice(0, SALT_MAX)
  if (!/^[./0-9A-Za-z]*$/.test(s)) throw new RangeError('MD5-crypt salt characters must be from ./0-9A-Za-z')
  return `${MAGIC}${s}$${encode(md5CryptDigest(Buffer.from(key), Buffer.from(s, 'ascii')))}`
}

const STORED = /^\$1\$([^$]*)\$([^$]*)$/

/**
 * Checks a stored `$1$` value. `scheme` is the prefix it came with, for the error only.
 * Throws UnsupportedSchemeError for a value no MD5-crypt implementation outputs (a salt over 8
 * characters or outside the alphabet, a hash of the wrong length): it could never match there.
 */
export function verifyMd5Crypt(scheme: string, stored: string, key: Uint8Array): boolean {
  const m = STORED.exec(stored)
  if (!m) throw new UnsupportedSchemeError(scheme, 'not an MD5-crypt string ($1$salt$hash)')
  const [, salt, encoded] = m as unknown as [string, string, string]
  if (salt.length > SALT_MAX || !/^[./0-9A-Za-z]*$/.test(salt)) {
    throw new UnsupportedSchemeError(scheme, 'MD5-crypt salt longer than 8 or outside ./0-9A-Za-z')
  }
  if (!/^[./0-9A-Za-z]{22}$/.test(encoded)) throw new UnsupportedSchemeError(scheme, 'MD5-crypt hash of the wrong length or alphabet')
  return equalDigests(Buffer.from(md5Crypt(key, salt), 'ascii'), Buffer.from(stored, 'ascii'))
}

function md5CryptDigest(p: Buffer, s: Buffer): Buffer {
  const md5 = (...parts: Buffer[]) => hash('md5', Buffer.concat(parts), 'buffer')
  const alternate = md5(p, s, p)
  const parts = [p, Buffer.from(MAGIC, 'ascii'), s]
  for (let left = p.length; left > 0; left -= 16) parts.push(alternate.subarray(0, Math.min(16, left)))
  // The original's quirk, kept by every implementation: per bit of |P|, a zero byte or P's first byte.
  const zero = Buffer.alloc(1)
  for (let n = p.length; n > 0; n >>= 1) parts.push(n & 1 ? zero : p.subarray(0, 1))
  let c = md5(...parts)
  for (let i = 0; i < ROUNDS; i++) {
    c = md5(i & 1 ? p : c, i % 3 ? s : Buffer.alloc(0), i % 7 ? p : Buffer.alloc(0), i & 1 ? c : p)
  }
  return c
}

function encode(digest: Buffer): string {
  let out = ''
  const emit = (w: number, chars: number) => {
    for (let i = 0; i < chars; i++, w >>= 6) out += ALPHABET[w & 63]
  }
  for (const [x, y, z] of GROUPS) emit((digest[x]! << 16) | (digest[y]! << 8) | digest[z]!, 4)
  emit(digest[11]!, 2)
  return out
}
