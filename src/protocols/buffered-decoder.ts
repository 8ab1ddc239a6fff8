// The byte buffering every incremental decoder shares: chunks are appended as they arrive and
// consumed from the front by the subclass; after a protocol error the buffer is dropped and
// nothing more is decoded (the connection is closing anyway).
//
// Appending must cost time linear in the bytes received, however they are chunked: a peer may
// trickle a request in one byte per segment, and copying everything buffered on every chunk
// (Buffer.concat) made that quadratic: 0.2 s of CPU for one 16 KiB request, minutes for one at
// the 1 MiB limit, on the daemon's only thread. So the bytes live in a store with room to grow
// that doubles when full, and the decoders that search for a line end remember how far they
// searched (their `#scanned`), so no byte is searched twice either.

const EMPTY = Buffer.alloc(0)

export abstract class BufferedDecoder {
  /** Holds the pending bytes in [#start, #end); owned stores have room after #end for more. */
  #store: Buffer = EMPTY
  #start = 0
  #end = 0
  /** True when #store was allocated here; a caller's chunk is never written into. */
  #owned = false
  protected failed = false

  constructor(protected readonly max: number) {}

  /** Bytes received but not yet returned as requests. */
  get pendingBytes(): number {
    return this.#end - this.#start
  }

  /** Bytes received and not yet consumed. A view: bytes in it are never overwritten later. */
  protected get buf(): Buffer {
    return this.#store.subarray(this.#start, this.#end)
  }

  /** Drops the first n bytes of buf, which the subclass has turned into a request. */
  protected consume(n: number): void {
    this.#start += n
    // Nothing pending: let the store go rather than pin a large chunk for an idle connection.
    if (this.#start >= this.#end) this.#release()
  }

  push(chunk: Buffer): void {
    if (this.failed || chunk.length === 0) return
    const pending = this.#end - this.#start
    if (pending === 0) {
      // The usual case, a whole request in one chunk: no copy at all.
      this.#store = chunk
      this.#start = 0
      this.#end = chunk.length
      this.#owned = false
      return
    }
    if (!this.#owned || this.#end + chunk.length > this.#store.length) {
      // At least double what is pending, so each byte is copied a bounded number of times.
      const grown = Buffer.allocUnsafe(Math.max(pending + chunk.length, 2 * pending))
      this.#store.copy(grown, 0, this.#start, this.#end)
      this.#store = grown
      this.#start = 0
      this.#end = pending
      this.#owned = true
    }
    chunk.copy(this.#store, this.#end)
    this.#end += chunk.length
  }

  /** Marks the stream broken and returns the error item to hand out (once). */
  protected fail<E>(error: E): { readonly type: 'error'; readonly error: E } {
    this.failed = true
    this.#release()
    return { type: 'error', error }
  }

  #release(): void {
    this.#store = EMPTY
    this.#start = 0
    this.#end = 0
    this.#owned = false
  }
}
