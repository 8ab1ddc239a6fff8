// The byte buffering every incremental decoder shares: chunks are appended as they arrive and
// consumed from the front by the subclass; after a protocol error the buffer is dropped and
// nothing more is decoded (the connection is closing anyway).

export abstract class BufferedDecoder {
  /** Bytes received and not yet consumed. */
  protected buf: Buffer = Buffer.alloc(0)
  protected failed = false

  constructor(protected readonly max: number) {}

  /** Bytes received but not yet returned as requests. */
  get pendingBytes(): number {
    return this.buf.length
  }

  push(chunk: Buffer): void {
    if (this.failed || chunk.length === 0) return
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
  }

  /** Marks the stream broken and returns the error item to hand out (once). */
  protected fail<E>(error: E): { readonly type: 'error'; readonly error: E } {
    this.failed = true
    this.buf = Buffer.alloc(0)
    return { type: 'error', error }
  }
}
