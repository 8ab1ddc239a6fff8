// Byte-level mutations of valid frames, and the random chunking a TCP stream may impose. Shared
// by the codec and listener fuzzers; what is protocol-specific (delimiters, hostile length
// prefixes, oversized lines) comes from each target.

import type { Rng } from './rng.js'

/** Byte sequences that are not valid UTF-8: stray continuation, truncated, overlong, surrogate, beyond U+10FFFF. */
const INVALID_UTF8: readonly Buffer[] = [
  [0xff],
  [0xfe, 0xfe],
  [0x80],
  [0xc3],
  [0xe2, 0x82],
  [0xc0, 0x80],
  [0xe0, 0x80, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
].map((b) => Buffer.from(b))

export type MutationKind = 'flip' | 'truncate' | 'insert' | 'delete' | 'repeat' | 'utf8' | 'delimiter' | 'garbage'
const KINDS: readonly MutationKind[] = ['flip', 'truncate', 'insert', 'delete', 'repeat', 'utf8', 'delimiter', 'garbage']

/**
 * One to three mutations of `frame`. `delimiters` are the bytes the protocol gives meaning to:
 * inserting them where they do not belong is what finds framing bugs, far more often than
 * uniformly random bytes do.
 */
export function mutate(rng: Rng, frame: Buffer, delimiters: readonly Buffer[]): Buffer {
  let out = frame
  const rounds = rng.int(1, 3)
  for (let i = 0; i < rounds; i++) out = mutateOnce(rng, out, rng.pick(KINDS), delimiters)
  return out
}

function mutateOnce(rng: Rng, b: Buffer, kind: MutationKind, delimiters: readonly Buffer[]): Buffer {
  const at = rng.int(0, b.length)
  switch (kind) {
    case 'flip': {
      if (b.length === 0) return rng.bytes(1)
      const out = Buffer.from(b)
      for (let n = rng.int(1, 4); n > 0; n--) {
        const i = rng.below(out.length)
        // Half single-bit flips (near misses of valid bytes), half arbitrary bytes.
        out[i] = rng.chance(0.5) ? out[i]! ^ (1 << rng.below(8)) : rng.u32() & 0xff
      }
      return out
    }
    case 'truncate':
      return b.subarray(0, rng.below(Math.max(1, b.length)))
    case 'insert':
      return splice(b, at, 0, rng.bytes(rng.int(1, 16)))
    case 'delete':
      return splice(b, at, rng.int(1, 8), Buffer.alloc(0))
    case 'repeat': {
      const end = Math.min(b.length, at + rng.int(1, 32))
      const part = b.subarray(at, end)
      return splice(b, end, 0, Buffer.concat(Array.from({ length: rng.int(1, 8) }, () => part)))
    }
    case 'utf8':
      return splice(b, at, rng.chance(0.3) ? 1 : 0, rng.pick(INVALID_UTF8))
    case 'delimiter':
      return splice(b, at, rng.chance(0.3) ? 1 : 0, rng.pick(delimiters))
    case 'garbage':
      return rng.bytes(rng.int(0, 64))
  }
}

function splice(b: Buffer, at: number, remove: number, insert: Buffer): Buffer {
  return Buffer.concat([b.subarray(0, at), insert, b.subarray(Math.min(b.length, at + remove))])
}

/**
 * Cuts a stream into the chunks a socket might deliver: whole, byte by byte (short streams
 * only, it is slow), or at random points, which lands boundaries inside length prefixes,
 * escapes and multi-byte characters.
 */
export function chunk(rng: Rng, stream: Buffer): Buffer[] {
  const mode = rng.below(4)
  if (mode === 0 || stream.length < 2) return [stream]
  if (mode === 1 && stream.length <= 256) return Array.from(stream, (_, i) => stream.subarray(i, i + 1))
  const cuts = new Set<number>()
  for (let n = rng.int(1, 8); n > 0; n--) cuts.add(rng.int(1, stream.length - 1))
  const points = [0, ...[...cuts].sort((x, y) => x - y), stream.length]
  return points.slice(1).map((end, i) => stream.subarray(points[i], end))
}
