// The invariants every codec must keep on every input, however damaged:
// - it never throws (an exception would cross the wire as a dropped connection or a crash);
// - it yields requests, then at most one error, then nothing, even when fed more bytes;
// - it holds no more than its limit allows between pulls (memory a peer can pin);
// - the chunking never changes the result (TCP may cut anywhere);
// - the valid frames before the damage decode exactly, a hostile frame right after them gives
//   its error, and an undamaged stream decodes to exactly its frames with nothing left over.

import type { CodecInput } from './codec-input.js'
import type { CodecTarget, Decoded } from './codecs/target.js'

export interface CheckResult {
  /** The first invariant broken, or undefined when the input passed. */
  readonly violation?: string
  /** True when the codec threw: counted as a crash, not merely a wrong answer. */
  readonly threw: boolean
  /** The last item decoded, to tally how inputs ended (a request, or which error). */
  readonly last?: string
}

export function checkInput(target: CodecTarget, input: CodecInput): CheckResult {
  let chunked: Decoded
  let whole: Decoded | undefined
  try {
    chunked = target.decode(input.chunks, input.max)
    if (input.chunks.length > 1) whole = target.decode([input.stream], input.max)
  } catch (err) {
    return { threw: true, violation: `threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}` }
  }
  const violation = firstViolation(target, input, chunked, whole)
  const last = chunked.items.at(-1)
  return { threw: false, ...(violation === undefined ? {} : { violation }), ...(last === undefined ? {} : { last }) }
}

function firstViolation(target: CodecTarget, input: CodecInput, got: Decoded, whole: Decoded | undefined): string | undefined {
  const { items } = got
  const errorAt = items.findIndex((i) => i.startsWith('E:'))
  if (errorAt >= 0 && errorAt !== items.length - 1) return `items after an error: ${show(items)}`
  if (got.afterError > 0) return `${got.afterError} item(s) decoded after the error`
  if (got.badShape !== undefined) return `malformed request handed out: ${got.badShape}`
  const bound = target.pendingBound(input.max)
  if (got.maxPending > bound) return `held ${got.maxPending} bytes between pulls, bound ${bound}`
  if (whole !== undefined && show(whole.items) !== show(items)) return `chunking changed the result: ${show(items)} vs whole ${show(whole.items)}`
  for (let i = 0; i < input.validPrefix.length; i++) {
    if (items[i] !== input.validPrefix[i]) return `valid frame ${i} decoded as ${items[i]}, expected ${input.validPrefix[i]}`
  }
  if (input.hostileError !== undefined && items[input.validPrefix.length] !== input.hostileError) {
    return `hostile frame gave ${items[input.validPrefix.length]}, expected ${input.hostileError}`
  }
  if (input.allValid) {
    if (items.length !== input.validPrefix.length) return `undamaged stream gave ${items.length} items for ${input.validPrefix.length} frames`
    if (got.endPending !== 0) return `undamaged stream left ${got.endPending} bytes pending`
  }
  return undefined
}

const show = (items: readonly string[]) => {
  const s = JSON.stringify(items)
  return s.length > 400 ? `${s.slice(0, 400)}...` : s
}
