// Stored passwords in Dovecot's `{SCHEME}value` syntax: verifying them (SQL directories, LDAP
// compare mode) and hashing new ones. The prefix is required and read like Dovecot reads it
// (case-insensitive, `.HEX`/`.B64`/`.BASE64` encoding suffixes); a value we cannot verify
// throws UnsupportedSchemeError and is never a match. The functions here compute on the calling
// thread; the daemon reaches them through password-pool.ts, which runs the costly schemes on
// worker threads so a login storm cannot stall lookups.
//
// Values without a prefix are read as Dovecot reads them with default_pass_scheme = CRYPT when,
// and only when, they are crypt(3) strings (`$1$`, `$5$`, `$6$`, `$2y$`...): that is how
// PostfixAdmin (`md5crypt`, `php_crypt`), IndiMail and old iRedMail store passwords, and the
// `$id$` opening cannot be the encoding of any other scheme. Anything else unprefixed is refused.
//
// Dependencies. node:crypto covers MD5, SHA-1 and SHA-2, so PLAIN, the MD5 and SSHA families,
// MD5-crypt (md5-crypt.ts) and SHA-crypt (sha-crypt.ts) need nothing else; it has neither Argon2 (before Node 24.7) nor bcrypt.
// - hash-wasm (MIT, no dependencies, no install script: WebAssembly shipped in the package)
//   does both. Its Argon2id is 4-5 times faster than pure JS here: 57 ms for OWASP's 19 MiB x 2
//   setting and 255 ms for Dovecot's 64 MiB x 3, against 218 ms and 1135 ms for @noble/hashes,
//   so only it can verify an OWASP-strength hash within our 150 ms budget. Its bcrypt matches
//   bcryptjs (60 ms against 70 ms at cost 10).
// - @noble/hashes (MIT, no dependencies, audited, ESM) computes Argon2id for the empty
//   password, the one input hash-wasm refuses: Dovecot hashes and verifies it like any other.
// The alternative, @noble/hashes plus bcryptjs, is two pure-JS packages for the same coverage
// but would have had to weaken the default Argon2 cost below OWASP's minimum.

import { hash, randomBytes } from 'node:crypto'
import { hashArgon2id, verifyArgon2id } from './argon2.js'
import { hashBcrypt, verifyBcrypt } from './bcrypt.js'
import { verifyMd5Crypt } from './md5-crypt.js'
import { hashSaltedSha, verifySaltedSha } from './salted-sha.js'
import { decodeValue, equalDigests, equalSecrets, UnsupportedSchemeError, type ValueEncoding } from './scheme-support.js'
import { CRYPT_PASSPHRASE_LIMIT, shaCrypt, shaCryptSalt, verifyShaCrypt } from './sha-crypt.js'

export { UnsupportedSchemeError } from './scheme-support.js'

export type VerifyResult = 'ok' | 'mismatch'
export type Scheme = 'ARGON2ID' | 'SHA512-CRYPT' | 'SHA256-CRYPT' | 'BLF-CRYPT' | 'SSHA512' | 'SSHA256' | 'SSHA' | 'PLAIN'

/**
 * Argon2id at 19 MiB, 2 passes, 1 lane (argon2.ts): Debian 12's Dovecot 2.3.19 verifies it
 * (libsodium), and one hash or verification takes 57-66 ms here.
 */
export const DEFAULT_SCHEME: Scheme = 'ARGON2ID'

const SCHEMES: readonly Scheme[] = ['ARGON2ID', 'SHA512-CRYPT', 'SHA256-CRYPT', 'BLF-CRYPT', 'SSHA512', 'SSHA256', 'SSHA', 'PLAIN']

/**
 * Dovecot's names that take a crypt(3) string; which methods each accepts is in verifyCrypt.
 * They are also the costly ones: Argon2id, bcrypt and SHA-crypt take a cost (memory, passes,
 * rounds) from the stored value or the configuration, 57 ms and up per check at our defaults,
 * so they are the schemes password-pool.ts runs on worker threads.
 */
const CRYPT_SCHEMES: ReadonlySet<string> = new Set(['CRYPT', 'MD5-CRYPT', 'SHA256-CRYPT', 'SHA512-CRYPT', 'BLF-CRYPT', 'ARGON2ID'])
const PLAIN_SCHEMES = new Set(['PLAIN', 'CLEARTEXT', 'CLEAR'])
/** Unsalted MD5 digests, hex (PLAIN-MD5) or base64 (LDAP-MD5) unless a suffix says otherwise. */
const MD5_DIGEST_SCHEMES = new Set(['PLAIN-MD5', 'LDAP-MD5'])

/** A crypt(3) string: `$id$`, the id in lower case and digits (`$1$`, `$6$`, `$2y$`, `$y$`...). */
const CRYPT_STRING = /^\$[0-9a-z]{1,16}\$/
/** Traditional DES crypt (13 characters) and BSDi's extended form (`_` and 19). */
const DES_CRYPT = /^(?:[./0-9A-Za-z]{13}|_[./0-9A-Za-z]{19})$/
const DES_PROBLEM = 'traditional DES crypt is not supported (it reads only 8 characters of a password); rehash the password in another scheme'

/**
 * 'ok' when `plain` is the password `stored` was made from. Throws UnsupportedSchemeError when
 * `stored` has neither a `{SCHEME}` prefix nor a crypt(3) `$id$` opening, names a scheme or
 * crypt method mailhostd does not verify (DES crypt among them), or is malformed.
 */
export async function verifyPassword(stored: string, plain: string): Promise<VerifyResult> {
  const { scheme, encoding, value } = splitPrefix(stored)
  const key = Buffer.from(plain, 'utf8')
  let ok: boolean
  if (PLAIN_SCHEMES.has(scheme)) {
    const expected = encoding === undefined ? Buffer.from(value, 'utf8') : decodeValue(scheme, encoding, value)
    ok = equalSecrets(expected, key)
  } else if (scheme === 'SSHA' || scheme === 'SSHA256' || scheme === 'SSHA512') {
    ok = verifySaltedSha(scheme, encoding ?? 'base64', value, key)
  } else if (MD5_DIGEST_SCHEMES.has(scheme)) {
    ok = verifyMd5Digest(scheme, encoding, value, key)
  } else if (scheme === 'MD5') {
    // Dovecot's MD5 is MD5-crypt when the value is a `$1$` string and PLAIN-MD5 otherwise.
    const text = encodedText(scheme, encoding, value)
    ok = text.startsWith('$1$') ? verifyMd5Crypt(scheme, text, key) : verifyMd5Digest(scheme, undefined, text, key)
  } else if (CRYPT_SCHEMES.has(scheme)) {
    // A suffix encodes the crypt string itself: PostfixAdmin's `sha512.b64` writes {SHA512-CRYPT.B64}.
    ok = await verifyCrypt(scheme, encodedText(scheme, encoding, value), key)
  } else {
    throw new UnsupportedSchemeError(scheme, 'scheme not supported')
  }
  return ok ? 'ok' : 'mismatch'
}

/**
 * True when checking a password against `stored` is costly work (a crypt(3) scheme). The rest,
 * PLAIN and the salted SHA family, is one comparison or one SHA digest of a password and a salt
 * whose sizes the request limits bound: a few microseconds, less than handing the job to a thread
 * costs, and nothing in the stored value can make it dearer. Also false for a value without a
 * readable prefix: verifyPassword refuses it at once.
 */
export function verifyIsCostly(stored: string): boolean {
  let parts: ReturnType<typeof splitPrefix>
  try {
    parts = splitPrefix(stored)
  } catch {
    return false
  }
  const { scheme, encoding, value } = parts
  // {MD5} is costly as MD5-crypt (1000 MD5 rounds, ~1.6 ms here), not as a digest; an encoded one may be either.
  return CRYPT_SCHEMES.has(scheme) || (scheme === 'MD5' && (encoding !== undefined || value.startsWith('$1$')))
}

/** True when hashPassword(_, scheme) is costly work (see verifyIsCostly). */
export function hashIsCostly(scheme: Scheme): boolean {
  return CRYPT_SCHEMES.has(scheme)
}

/**
 * Checks and makes stored passwords. password-pool.ts runs the costly schemes on worker threads;
 * `inlinePasswords` computes everything on the calling thread (unit tests, tools).
 */
export interface PasswordHasher {
  /** As verifyPassword; `signal` lets a caller that stopped waiting drop a job not yet started. */
  verify(stored: string, plain: string, signal?: AbortSignal): Promise<VerifyResult>
  /** As hashPassword. */
  hash(plain: string, scheme?: Scheme): Promise<string>
}

export const inlinePasswords: PasswordHasher = {
  verify: (stored, plain) => verifyPassword(stored, plain),
  hash: (plain, scheme) => hashPassword(plain, scheme),
}

/** A new stored value, `{SCHEME}` prefix included. */
export async function hashPassword(plain: string, scheme: Scheme = DEFAULT_SCHEME): Promise<string> {
  // No login protocol can carry one, and crypt(3) in Dovecot would stop reading at it: such a
  // hash would verify here but not there.
  if (plain.includes('\0')) throw new RangeError('a password cannot contain a NUL character')
  const key = Buffer.from(plain, 'utf8')
  switch (scheme) {
    case 'ARGON2ID':
      return `{ARGON2ID}${await hashArgon2id(key)}`
    // Spec-default 5000 rounds, like doveadm: the output stays the short form every reader knows.
    case 'SHA512-CRYPT':
      return `{SHA512-CRYPT}${await shaCrypt('6', cryptKey(scheme, key), { salt: shaCryptSalt(randomBytes(16)) })}`
    case 'SHA256-CRYPT':
      return `{SHA256-CRYPT}${await shaCrypt('5', cryptKey(scheme, key), { salt: shaCryptSalt(randomBytes(16)) })}`
    case 'BLF-CRYPT':
      return `{BLF-CRYPT}${await hashBcrypt(key)}`
    case 'SSHA512':
    case 'SSHA256':
    case 'SSHA':
      return `{${scheme}}${hashSaltedSha(scheme, key)}`
    case 'PLAIN':
      return `{PLAIN}${plain}`
    default:
      // Callers in plain JS, or a scheme name read from configuration.
      throw new UnsupportedSchemeError(typeof scheme === 'string' && /^[\w.-]{1,40}$/.test(scheme) ? scheme : undefined, `cannot hash; use one of ${SCHEMES.join(', ')}`)
  }
}

/** A key Dovecot's crypt(3) takes for SHA-crypt (bcrypt has its own 72-byte rule, bcrypt.ts). */
function cryptKey(scheme: Scheme, key: Buffer): Buffer {
  if (key.length < CRYPT_PASSPHRASE_LIMIT) return key
  throw new RangeError(`${scheme} cannot hash passwords of ${CRYPT_PASSPHRASE_LIMIT} bytes or more: Dovecot's crypt(3) refuses them`)
}

function splitPrefix(stored: string): { scheme: string; encoding: ValueEncoding | undefined; value: string } {
  const m = /^\{([^}]*)\}/.exec(stored)
  if (!m) {
    // A bare crypt(3) string is {CRYPT} (see the header); any other unprefixed value could be
    // cleartext or an encoding of several schemes, and we do not guess.
    if (CRYPT_STRING.test(stored)) return { scheme: 'CRYPT', encoding: undefined, value: stored }
    if (DES_CRYPT.test(stored)) throw new UnsupportedSchemeError('CRYPT', DES_PROBLEM)
    throw new UnsupportedSchemeError(undefined, 'no {SCHEME} prefix')
  }
  // Only a name-shaped prefix goes into the message: anything else may be part of a secret.
  if (!/^[A-Za-z0-9-]+(?:\.[A-Za-z0-9]+)?$/.test(m[1]!) || m[1]!.length > 40) {
    throw new UnsupportedSchemeError(undefined, 'unreadable {SCHEME} prefix')
  }
  const [scheme, suffix] = m[1]!.toUpperCase().split('.') as [string, string | undefined]
  let encoding: ValueEncoding | undefined
  if (suffix === 'HEX') encoding = 'hex'
  else if (suffix === 'B64' || suffix === 'BASE64') encoding = 'base64'
  else if (suffix !== undefined) throw new UnsupportedSchemeError(scheme, 'unknown encoding suffix')
  return { scheme, encoding, value: stored.slice(m[0].length) }
}

/** The text a crypt-style value stands for: as written, or decoded when a suffix encodes it. */
function encodedText(scheme: string, encoding: ValueEncoding | undefined, value: string): string {
  // latin1 maps each byte to one character: junk stays junk, for the strict parsers to refuse.
  return encoding === undefined ? value : decodeValue(scheme, encoding, value).toString('latin1')
}

/**
 * PLAIN-MD5 (hex) and LDAP-MD5 (base64): MD5 of the password, unsalted. PLAIN-MD5 that is not
 * hex is tried as base64, as Dovecot does; either way the digest must be 16 bytes.
 */
function verifyMd5Digest(scheme: string, encoding: ValueEncoding | undefined, value: string, key: Uint8Array): boolean {
  const reading = encoding ?? (scheme === 'LDAP-MD5' || !/^(?:[0-9a-fA-F]{2})*$/.test(value) ? 'base64' : 'hex')
  const expected = decodeValue(scheme, reading, value)
  if (expected.length !== 16) throw new UnsupportedSchemeError(scheme, 'MD5 digest that is not 16 bytes')
  return equalDigests(hash('md5', key, 'buffer'), expected)
}

/**
 * Dovecot hands CRYPT, SHA256-CRYPT and SHA512-CRYPT values alike to crypt(3), so each takes
 * any method crypt(3) knows; MD5-CRYPT insists on `$1$`, BLF-CRYPT on bcrypt, ARGON2ID on
 * Argon2id. `$argon2id$` under {CRYPT} is our extension: Debian's crypt(3) (libxcrypt) does not
 * know it. DES crypt, yescrypt and the rest are refused.
 */
async function verifyCrypt(scheme: string, value: string, key: Uint8Array): Promise<boolean> {
  if (DES_CRYPT.test(value)) throw new UnsupportedSchemeError(scheme, DES_PROBLEM)
  const method = /^\$(1|2[a-z]?|5|6|argon2id)\$/.exec(value)?.[1]
  if (method === undefined || !acceptsMethod(scheme, method)) {
    throw new UnsupportedSchemeError(scheme, 'crypt method not supported for this scheme')
  }
  if (method === '1') {
    // crypt(3) (libxcrypt) refuses long passphrases for every method; Dovecot's own MD5-CRYPT does not.
    if (scheme !== 'MD5-CRYPT' && key.length >= CRYPT_PASSPHRASE_LIMIT) return false
    return verifyMd5Crypt(scheme, value, key)
  }
  if (method === '5' || method === '6') return verifyShaCrypt(scheme, value, key)
  if (method === 'argon2id') return verifyArgon2id(scheme, value, key)
  return verifyBcrypt(scheme, value, key)
}

function acceptsMethod(scheme: string, method: string): boolean {
  if (scheme === 'MD5-CRYPT') return method === '1'
  if (scheme === 'BLF-CRYPT') return method.startsWith('2')
  if (scheme === 'ARGON2ID') return method === 'argon2id'
  return method !== 'argon2id' || scheme === 'CRYPT'
}
