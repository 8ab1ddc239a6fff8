// What the codec fuzzer needs to know about one codec: how to build valid frames (with the
// request each must decode to), hostile ones (with the error each must produce), which bytes
// are delimiters worth inserting, and how to run bytes through the decoder.

import type { Rng } from '../rng.js'

/** A decoded item reduced to a comparable string: `R:<json>` for a request, `E:<error>` for an error. */
export type Item = string

export interface Frame {
  readonly bytes: Buffer
  /** The item a valid frame decodes to; undefined for frames that are not valid. */
  readonly expect?: Item
}

export interface Decoded {
  readonly items: Item[]
  /** The most bytes the decoder held between pulls: the memory a hostile peer can pin. */
  readonly maxPending: number
  /** Bytes still held once every chunk was pushed and pulled: none after a stream of whole frames. */
  readonly endPending: number
  /** Items returned after the stream was closed with an error: must be none. */
  readonly afterError: number
  /** A shape violation in a decoded request, e.g. a policy name containing `=`. */
  readonly badShape?: string
}

export interface CodecTarget {
  readonly name: string
  /** Bytes with meaning in the protocol, inserted by the `delimiter` mutation. */
  readonly delimiters: readonly Buffer[]
  /** Whether streams of several frames (pipelining) and chunking apply. */
  readonly streaming: boolean
  valid(rng: Rng, max: number): Frame
  /** A frame the decoder must refuse with `error`, e.g. a huge length prefix or an oversized line. */
  hostile(rng: Rng, max: number): { readonly bytes: Buffer; readonly error: string }
  /** The most bytes the decoder may hold between pulls for a given limit. */
  pendingBound(max: number): number
  /** Runs the chunks through a fresh decoder with limit `max`. Throws only if the codec throws. */
  decode(chunks: readonly Buffer[], max: number): Decoded
}

/** The part of every incremental decoder the fuzzer drives (they all share it). */
export interface StreamDecoder<T> {
  readonly pendingBytes: number
  push(chunk: Buffer): void
  next(): T | undefined
}

/**
 * Feeds chunks and pulls everything after each, as a Connection does. After an error it pushes
 * one more valid-looking chunk and pulls: a decoder that failed must stay silent, because the
 * listener has already answered and is closing.
 */
export function decodeStream<T extends { readonly type: string }>(
  decoder: StreamDecoder<T>,
  chunks: readonly Buffer[],
  item: (t: T) => { readonly item: Item; readonly badShape?: string },
  probe: Buffer,
): Decoded {
  const items: Item[] = []
  let maxPending = 0
  let badShape: string | undefined
  let failed = false
  for (const c of chunks) {
    decoder.push(c)
    for (let t = decoder.next(); t !== undefined; t = decoder.next()) {
      const r = item(t)
      items.push(r.item)
      badShape ??= r.badShape
      if (t.type === 'error') failed = true
    }
    maxPending = Math.max(maxPending, decoder.pendingBytes)
  }
  const endPending = decoder.pendingBytes
  let afterError = 0
  if (failed) {
    decoder.push(probe)
    while (decoder.next() !== undefined) afterError++
  }
  return { items, maxPending, endPending, afterError, ...(badShape === undefined ? {} : { badShape }) }
}

export const request = (value: unknown): Item => `R:${JSON.stringify(value)}`
export const error = (e: string): Item => `E:${e}`
export const bytesOf = (...parts: string[]): Buffer[] => parts.map((p) => Buffer.from(p, 'latin1'))
