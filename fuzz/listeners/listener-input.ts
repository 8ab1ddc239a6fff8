// One fuzz connection's bytes for a listener, rebuilt from (seed, listener, index) alone: a few
// requests from the listener's valid set, some of them mutated, now and then an oversized one,
// cut into random chunks; and whether the fuzzer half-closes after writing or leaves the
// connection open for the daemon's timeouts to close.

import { chunk, mutate } from '../mutate.js'
import { Rng } from '../rng.js'
import type { ValidRequest } from './expectations.js'
import type { ListenerTarget } from './targets.js'

export interface ListenerInput {
  readonly frames: number
  readonly chunks: readonly Buffer[]
  readonly halfClose: boolean
  /** The valid requests before the first damaged frame: their replies must come, in order, and be right. */
  readonly validPrefix: readonly ValidRequest[]
  readonly allValid: boolean
  /** The first damaged frame is an oversized one: the listener's too-large answer (or none) and a close. */
  readonly hostileFirst: boolean
}

/** Listener streams are numbered after the codecs', so no input of a run repeats another's. */
const STREAM_BASE = 100

export function listenerInput(target: ListenerTarget, listenerIndex: number, seed: number, index: number, max: number): ListenerInput {
  const rng = new Rng(seed, STREAM_BASE + listenerIndex, index)
  const parts: Buffer[] = []
  const validPrefix: ValidRequest[] = []
  let damaged = false
  let hostileFirst = false
  if (target.preamble) {
    const roll = rng.below(20)
    // Mostly the proper handshake; sometimes a damaged one, sometimes none at all.
    if (roll === 0) damaged = true
    else if (roll === 1) {
      parts.push(mutate(rng, target.preamble, target.codec.delimiters))
      damaged = true
    } else parts.push(target.preamble)
  }
  const frames = rng.int(1, 6)
  for (let i = 0; i < frames; i++) {
    const roll = rng.below(100)
    if (roll < 3) {
      if (!damaged) hostileFirst = true
      parts.push(target.codec.hostile(rng, max).bytes)
      damaged = true
      continue
    }
    const request = rng.pick(target.valid)
    if (roll < 40) {
      parts.push(mutate(rng, request.bytes, target.codec.delimiters))
      damaged = true
      continue
    }
    parts.push(request.bytes)
    if (!damaged) validPrefix.push(request)
  }
  return { frames, chunks: chunk(rng, Buffer.concat(parts)), halfClose: rng.chance(0.95), validPrefix, allValid: !damaged, hostileFirst }
}
