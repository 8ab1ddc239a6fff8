// SHA-crypt: the crypt(3) methods $5$ (SHA-256) and $6$ (SHA-512) after Ulrich Drepper's
// "Unix crypt using SHA-256 and SHA-512". Written here because node:crypto has the digests but
// not the construction, and the C library's crypt() is out of reach without a native addon.
// shaCrypt() follows the spec for any settings (rounds clamped, salt cut to 16); stored values
// are read strictly: a value no implementation outputs (rounds out of range, a longer salt)
// can never match in glibc or libxcrypt either, and is reported instead of compared.

import { createHash, hash } from 'node:crypto'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { equalDigests, UnsupportedSchemeError } from './scheme-support.js'

export type ShaCryptId = '5' | '6'

export const ROUNDS_DEFAULT = 5000
export const ROUNDS_MIN = 1000
export const ROUNDS_MAX = 999_999_999
const SALT_MAX = 16
/**
 * libxcrypt, Debian's crypt(3) and so what Dovecot verifies SHA-crypt with, refuses passphrases
 * of this many bytes or more (CRYPT_MAX_PASSPHRASE_SIZE): such a password never matches there,
 * so neither does it here, which also bounds the work (it grows with the square of the length).
 * Dovecot's bcrypt is its own copy of crypt_blowfish, without the limit.
 */
export const CRYPT_PASSPHRASE_LIMIT = 512
/** crypt(3)'s base64 alphabet (not RFC 4648's order). */
const ALPHABET = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
/** A huge rounds= must not freeze the daemon: hand the event loop back this often. */
const ROUNDS_PER_TURN = 20_000

interface Variant {
  readonly alg: 'sha256' | 'sha512'
  readonly size: number
  /** The spec's byte order for the output: groups of three digest indexes, then the tail. */
  readonly groups: readonly (readonly [number, number, number])[]
  readonly tail: readonly [number, number, number, number]
  readonly encodedLength: number
}

/** Group k takes bytes k, k+step, k+2*step, rotated by k mod 3 (left for $6$, right for $5$). */
function groups(count: number, step: number, rotateLeft: boolean): [number, number, number][] {
  return Array.from({ length: count }, (_, k) => {
    const base = [k, k + step, k + 2 * step]
    const r = rotateLeft ? k % 3 : (3 - (k % 3)) % 3
    return [base[r % 3]!, base[(r + 1) % 3]!, base[(r + 2) % 3]!]
  })
}

const VARIANTS: Record<ShaCryptId, Variant> = {
  // The tail: (byte2, byte1, byte0, characters), -1 standing for a zero byte.
  '5': { alg: 'sha256', size: 32, groups: groups(10, 10, false), tail: [-1, 31, 30, 3], encodedLength: 43 },
  '6': { alg: 'sha512', size: 64, groups: groups(21, 21, true), tail: [-1, -1, 63, 2], encodedLength: 86 },
}

export interface ShaCryptSettings {
  /** Characters from ./0-9A-Za-z; past 16 they are ignored, as the spec says. */
  readonly salt: string
  /** Omitted: 5000 and no `rounds=` in the output. Otherwise clamped to 1000..999999999. */
  readonly rounds?: number
}

/** crypt(3) with a `$5$` or `$6$` setting: the whole output string. */
export async function shaCrypt(id: ShaCryptId, key: Uint8Array, settings: ShaCryptSettings): Promise<string> {
  if (!/^[./0-9A-Za-z]*$/.test(settings.salt)) throw new RangeError('SHA-crypt salt characters must be from ./0-9A-Za-z')
  if (settings.rounds !== undefined && !(Number.isSafeInteger(settings.rounds) && settings.rounds >= 0)) {
    throw new RangeError('SHA-crypt rounds must be a non-negative integer')
  }
  const salt = settings.salt.slice(0, SALT_MAX)
  const rounds = settings.rounds === undefined ? ROUNDS_DEFAULT : Math.min(ROUNDS_MAX, Math.max(ROUNDS_MIN, settings.rounds))
  const variant = VARIANTS[id]
  const digest = await shaCryptDigest(variant, Buffer.from(key), Buffer.from(salt, 'ascii'), rounds)
  return `$${id}$${settings.rounds === undefined ? '' : `rounds=${rounds}$`}${salt}$${encode(variant, digest)}`
}

const STORED = /^\$([56])\$(?:rounds=([0-9]+)\$)?([^$]*)\$([^$]*)$/

/**
 * Checks a stored `$5$`/`$6$` value. `scheme` is the prefix it came with, for the error only.
 * Throws UnsupportedSchemeError for a value that is not a well-formed SHA-crypt string.
 */
export async function verifyShaCrypt(scheme: string, stored: string, key: Uint8Array): Promise<boolean> {
  const m = STORED.exec(stored)
  if (!m) throw new UnsupportedSchemeError(scheme, 'not a SHA-crypt string')
  const [, id, roundsText, salt, encoded] = m as unknown as [string, ShaCryptId, string | undefined, string, string]
  let rounds: number | undefined
  if (roundsText !== undefined) {
    // Leading zeros, or a value the spec would clamp, make an output that never equals this.
    rounds = Number(roundsText)
    if (!/^[1-9]/.test(roundsText) || rounds < ROUNDS_MIN || rounds > ROUNDS_MAX) {
      throw new UnsupportedSchemeError(scheme, `rounds= outside ${ROUNDS_MIN}..${ROUNDS_MAX}`)
    }
  }
  if (salt.length > SALT_MAX || !/^[./0-9A-Za-z]*$/.test(salt)) {
    throw new UnsupportedSchemeError(scheme, 'SHA-crypt salt longer than 16 or outside ./0-9A-Za-z')
  }
  if (encoded.length !== VARIANTS[id].encodedLength || !/^[./0-9A-Za-z]*$/.test(encoded)) {
    throw new UnsupportedSchemeError(scheme, 'SHA-crypt hash of the wrong length or alphabet')
  }
  if (key.length >= CRYPT_PASSPHRASE_LIMIT) return false
  const computed = await shaCrypt(id, key, rounds === undefined ? { salt } : { salt, rounds })
  return equalDigests(Buffer.from(computed, 'ascii'), Buffer.from(stored, 'ascii'))
}

/** A random 16-character salt: bytes mod 64 are uniform since 256 is a multiple of 64. */
export function shaCryptSalt(random: Uint8Array): string {
  return Array.from(random.subarray(0, SALT_MAX), (b) => ALPHABET[b & 63]).join('')
}

async function shaCryptDigest(v: Variant, p: Buffer, s: Buffer, rounds: number): Promise<Buffer> {
  const h = (...parts: Buffer[]) => hash(v.alg, Buffer.concat(parts), 'buffer')
  // Digest B = H(P S P); A = H(P S, B for |P| bytes, then per bit of |P| from the lowest: B or P).
  const b = h(p, s, p)
  const aParts = [p, s, repeatTo(b, p.length)]
  for (let n = p.length; n > 0; n >>= 1) aParts.push(n & 1 ? b : p)
  let c = h(...aParts)
  // P and S sequences: digests of P repeated |P| times and of S repeated 16 + A[0] times.
  const pSeq = repeatTo(digestRepeated(v.alg, p, p.length), p.length)
  const sSeq = digestRepeated(v.alg, s, 16 + c[0]!).subarray(0, s.length)

  const scratch = Buffer.allocUnsafe(2 * Math.max(p.length, v.size) + s.length + p.length)
  for (let i = 0; i < rounds; i++) {
    let n = (i & 1 ? pSeq : c).copy(scratch, 0)
    if (i % 3 !== 0) n += sSeq.copy(scratch, n)
    if (i % 7 !== 0) n += pSeq.copy(scratch, n)
    n += (i & 1 ? c : pSeq).copy(scratch, n)
    c = hash(v.alg, scratch.subarray(0, n), 'buffer')
    if (i % ROUNDS_PER_TURN === ROUNDS_PER_TURN - 1) await nextTurn()
  }
  return c
}

/** The digest of `block` written `times` times, fed piece by piece: |P|² bytes need not exist at once. */
function digestRepeated(alg: string, block: Buffer, times: number): Buffer {
  const ctx = createHash(alg)
  for (let i = 0; i < times; i++) ctx.update(block)
  return ctx.digest()
}

/** `length` bytes of `block` repeated (the spec's "P sequence" shape). */
function repeatTo(block: Buffer, length: number): Buffer {
  const out = Buffer.allocUnsafe(length)
  for (let off = 0; off < length; off += block.length) block.copy(out, off, 0, Math.min(block.length, length - off))
  return out
}

function encode(v: Variant, digest: Buffer): string {
  let out = ''
  const emit = (b2: number, b1: number, b0: number, chars: number) => {
    let w = (b2 << 16) | (b1 << 8) | b0
    for (let i = 0; i < chars; i++, w >>= 6) out += ALPHABET[w & 63]
  }
  const at = (i: number) => (i < 0 ? 0 : digest[i]!)
  for (const [x, y, z] of v.groups) emit(at(x), at(y), at(z), 4)
  emit(at(v.tail[0]), at(v.tail[1]), at(v.tail[2]), v.tail[3])
  return out
}
