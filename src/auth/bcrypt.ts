// bcrypt ($2a$, $2b$, $2y$), computed by hash-wasm (see passwords.ts for why). The three
// prefixes name the same computation for every UTF-8 password: $2b$ fixed an OpenBSD length
// wrap-around at 256 bytes that the 72-byte cut below makes moot, and $2a$ differs from $2y$ in
// crypt_blowfish only for keys whose sign-extension bug left them unchanged, which needs 0xFF
// bytes that UTF-8 never contains. $2x$ (the bug kept on purpose) is not supported.

import { randomBytes } from 'node:crypto'
import { bcrypt } from 'hash-wasm'
import { equalDigests, UnsupportedSchemeError } from './scheme-support.js'

/** bcrypt's key schedule reads the password and its NUL terminator, at most 72 bytes. */
export const BCRYPT_MAX_KEY_BYTES = 72
/** About 60 ms here (passwords.ts has the numbers); Dovecot's own default, 5, is 32 times cheaper. */
export const BCRYPT_DEFAULT_COST = 10

const STORED = /^\$2[aby]\$([0-9]{2})\$([./A-Za-z0-9]{53})$/
const BCRYPT_ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
const RFC_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

export async function verifyBcrypt(scheme: string, stored: string, key: Uint8Array): Promise<boolean> {
  const m = STORED.exec(stored)
  if (!m) throw new UnsupportedSchemeError(scheme, 'not a bcrypt string ($2a$, $2b$ or $2y$, cost, 53 characters)')
  const cost = Number(m[1])
  if (cost < 4 || cost > 31) throw new UnsupportedSchemeError(scheme, 'bcrypt cost outside 04..31')
  const computed = await bcryptEncoded(key, decodeSalt(m[2]!.slice(0, 22)), cost)
  // Salt and hash as crypt_blowfish writes them (it normalises the salt's last character, so a
  // non-canonical stored salt never matches there either); the prefixes may differ in name only.
  return equalDigests(Buffer.from(computed.slice(7), 'ascii'), Buffer.from(stored.slice(7), 'ascii'))
}

/** A `$2y$` string, the prefix Dovecot and crypt_blowfish write. */
export async function hashBcrypt(key: Uint8Array, cost = BCRYPT_DEFAULT_COST): Promise<string> {
  // bcrypt ignores everything past 72 bytes: such a hash would accept other passwords too.
  if (key.length > BCRYPT_MAX_KEY_BYTES) throw new RangeError(`BLF-CRYPT uses only the first ${BCRYPT_MAX_KEY_BYTES} bytes of a password; choose another scheme for longer ones`)
  const computed = await bcryptEncoded(key, randomBytes(16), cost)
  return `$2y$${computed.slice(4)}`
}

async function bcryptEncoded(key: Uint8Array, salt: Uint8Array, costFactor: number): Promise<string> {
  // hash-wasm refuses an empty password and more than 72 bytes, and appends the NUL itself.
  // Past 72 bytes bcrypt ignores the rest, so cut; the empty password's key is a lone NUL,
  // which cycles to the same 72 zero bytes as the NUL we pass plus the one hash-wasm appends.
  const password = key.length === 0 ? new Uint8Array(1) : key.subarray(0, BCRYPT_MAX_KEY_BYTES)
  return bcrypt({ password, salt, costFactor, outputType: 'encoded' })
}

/** bcrypt's base64 has RFC 4648's bit layout in another alphabet: translate, then decode. */
function decodeSalt(text: string): Buffer {
  const rfc = Array.from(text, (c) => RFC_ALPHABET[BCRYPT_ALPHABET.indexOf(c)]).join('')
  return Buffer.from(rfc, 'base64').subarray(0, 16)
}
