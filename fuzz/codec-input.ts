// One fuzz input for a codec, rebuilt from (seed, codec, index) alone: a few frames pipelined
// into one stream (valid ones, mutated ones, a hostile one), the limit to decode them with, and
// the chunks the stream arrives in.

import type { CodecTarget, Item } from './codecs/target.js'
import { chunk, mutate } from './mutate.js'
import { Rng } from './rng.js'

export interface CodecInput {
  readonly frames: number
  readonly max: number
  readonly stream: Buffer
  readonly chunks: readonly Buffer[]
  /** What the frames before the first non-valid one must decode to, in order. */
  readonly validPrefix: readonly Item[]
  /** True when every frame is valid: the items must be exactly validPrefix, and nothing may be left over. */
  readonly allValid: boolean
  /** The error the first non-valid frame must produce, when it is a hostile one. */
  readonly hostileError?: Item
}

/** Kinds of frame in an input, by weight: valid traffic around the damage keeps the checks sharp. */
type FrameKind = 'valid' | 'mutated' | 'hostile'
const KIND_WEIGHTS: readonly FrameKind[] = ['valid', 'valid', 'valid', 'valid', 'valid', 'mutated', 'mutated', 'mutated', 'mutated', 'hostile']

export function codecInput(target: CodecTarget, seed: number, codecIndex: number, index: number, defaultMax: number): CodecInput {
  const rng = new Rng(seed, codecIndex, index)
  // The daemon's default limit one time in ten; small limits reach the same edges with far
  // fewer bytes (an oversized frame is over the limit, whatever the limit).
  const max = rng.chance(0.1) ? defaultMax : rng.int(64, 1024)
  const count = target.streaming ? rng.int(1, 6) : 1
  const parts: Buffer[] = []
  const validPrefix: Item[] = []
  let damaged = false
  let hostileError: Item | undefined
  for (let i = 0; i < count; i++) {
    const kind = rng.pick(KIND_WEIGHTS)
    if (kind === 'hostile') {
      const h = target.hostile(rng, max)
      if (!damaged) hostileError = h.error
      parts.push(h.bytes)
      damaged = true
      continue
    }
    const frame = target.valid(rng, max)
    if (kind === 'mutated') {
      parts.push(mutate(rng, frame.bytes, target.delimiters))
      damaged = true
      continue
    }
    parts.push(frame.bytes)
    if (!damaged) validPrefix.push(frame.expect!)
  }
  const stream = Buffer.concat(parts)
  return {
    frames: count,
    max,
    stream,
    chunks: target.streaming ? chunk(rng, stream) : [stream],
    validPrefix,
    allValid: !damaged,
    ...(hostileError === undefined ? {} : { hostileError }),
  }
}
