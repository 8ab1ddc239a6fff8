// The contract every pull decoder in this directory meets. It lives with the codecs, not with the
// connection that drives them, so a codec depends on nothing in src/server/: the server plugs
// decoders in, never the other way round.

export type RequestError = 'malformed' | 'too-large'

export type DecodedItem<R> =
  | { readonly type: 'request'; readonly request: R }
  | { readonly type: 'error'; readonly error: RequestError }

export interface RequestDecoder<R> {
  /** Bytes buffered that have not been returned by next(). */
  readonly pendingBytes: number
  push(chunk: Buffer): void
  /** A request, an error (after which it yields nothing), or undefined when it needs more bytes. */
  next(): DecodedItem<R> | undefined
}
