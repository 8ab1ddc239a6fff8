// Argon2id in the PHC string format libsodium (and so Dovecot's {ARGON2ID}) reads and writes:
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>, unpadded base64. hash-wasm
// computes it (see passwords.ts); for the one input it refuses, the empty password, the
// pure-JS @noble/hashes does, in slices that leave the event loop free.

import { randomBytes } from 'node:crypto'
import { argon2idAsync } from '@noble/hashes/argon2.js'
import { argon2id } from 'hash-wasm'
import { decodeBase64Unpadded, equalDigests, UnsupportedSchemeError } from './scheme-support.js'

export interface Argon2Cost {
  /** Memory in KiB (the PHC `m`). */
  readonly memoryKiB: number
  /** Passes over the memory (`t`). */
  readonly passes: number
  /** Lanes (`p`); hash-wasm computes them one after the other. */
  readonly lanes: number
}

/**
 * OWASP's first recommended Argon2id setting (19 MiB, 2 passes, 1 lane): 57-66 ms per hash or
 * verification on the 2-core development machine (Node 24 / Node 20), in 19 MiB of WebAssembly
 * memory that is garbage once the call returns (resident size settled 20-30 MiB above idle in a
 * loop). Dovecot's default (64 MiB, 3 passes) takes about 250 ms, blocking the event loop.
 */
export const ARGON2_DEFAULT_COST: Argon2Cost = { memoryKiB: 19_456, passes: 2, lanes: 1 }
/** libsodium's "sensitive" level; a stored value above it would take seconds and a GiB each. */
export const ARGON2_MAX_MEMORY_KIB = 1_048_576
const SALT_BYTES = 16
const HASH_BYTES = 32

const STORED = /^\$argon2id\$v=([0-9]{1,10})\$m=([0-9]{1,10}),t=([0-9]{1,10}),p=([0-9]{1,10})\$([^$]*)\$([^$]*)$/

export async function verifyArgon2id(scheme: string, stored: string, key: Uint8Array): Promise<boolean> {
  const m = STORED.exec(stored)
  if (!m) throw new UnsupportedSchemeError(scheme, 'not an $argon2id$v=..$m=..,t=..,p=..$salt$hash string')
  const [version, memoryKiB, passes, lanes] = m.slice(1, 5).map(Number) as [number, number, number, number]
  if (version !== 19) throw new UnsupportedSchemeError(scheme, 'Argon2 version other than 19 (0x13)')
  // Argon2's own limits (RFC 9106 §3.1), and ours on memory.
  if (passes < 1 || lanes < 1 || lanes > 0xffffff || memoryKiB < 8 * lanes) {
    throw new UnsupportedSchemeError(scheme, 'Argon2 parameters outside the algorithm limits')
  }
  if (memoryKiB > ARGON2_MAX_MEMORY_KIB) throw new UnsupportedSchemeError(scheme, 'Argon2 memory above 1 GiB')
  const salt = decodeBase64Unpadded(m[5]!)
  const expected = decodeBase64Unpadded(m[6]!)
  if (salt === undefined || expected === undefined) throw new UnsupportedSchemeError(scheme, 'Argon2 salt or hash is not base64')
  if (salt.length < 8 || expected.length < 4) throw new UnsupportedSchemeError(scheme, 'Argon2 salt under 8 or hash under 4 bytes')
  const computed = await argon2Raw(key, salt, { memoryKiB, passes, lanes }, expected.length)
  return equalDigests(computed, expected)
}

/** The PHC string, without Dovecot's {ARGON2ID} prefix. */
export async function hashArgon2id(key: Uint8Array, cost: Argon2Cost = ARGON2_DEFAULT_COST): Promise<string> {
  const salt = randomBytes(SALT_BYTES)
  const out = await argon2Raw(key, salt, cost, HASH_BYTES)
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64').replace(/=+$/, '')
  return `$argon2id$v=19$m=${cost.memoryKiB},t=${cost.passes},p=${cost.lanes}$${b64(salt)}$${b64(out)}`
}

async function argon2Raw(key: Uint8Array, salt: Uint8Array, cost: Argon2Cost, length: number): Promise<Uint8Array> {
  if (key.length === 0) {
    return argon2idAsync(key, salt, { m: cost.memoryKiB, t: cost.passes, p: cost.lanes, dkLen: length })
  }
  return argon2id({
    password: key,
    salt,
    iterations: cost.passes,
    parallelism: cost.lanes,
    memorySize: cost.memoryKiB,
    hashLength: length,
    outputType: 'binary',
  })
}
