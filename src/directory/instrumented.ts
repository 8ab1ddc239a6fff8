// Measures every call that reaches a directory: its duration and result for Prometheus, errors
// by code, and when the directory last answered at all. The last is what readiness asks: while
// the directory has answered within cache.maxStale, cached answers can still be served stale,
// so the instance is still useful to Postfix. It sits inside the circuit breaker, so calls the
// breaker refuses are not calls.

import { DirectoryError, codeOf } from '../errors.js'
import type { Metrics } from '../metrics.js'
import type { AccountEntry, Directory, DirectoryEntry } from './directory.js'

export class InstrumentedDirectory implements Directory {
  readonly #inner: Directory
  readonly #metrics: Metrics
  readonly #now: () => number
  #lastAnswerAt: number | undefined

  /** `now`: wall clock in ms (Date.now), injectable for tests. */
  constructor(inner: Directory, metrics: Metrics, now: () => number = Date.now) {
    this.#inner = inner
    this.#metrics = metrics
    this.#now = now
  }

  get kind() {
    return this.#inner.kind
  }

  /** When the directory last answered (ms since the epoch), or undefined if it never has. */
  get lastAnswerAt(): number | undefined {
    return this.#lastAnswerAt
  }

  findByAddress(address: string, signal?: AbortSignal): Promise<DirectoryEntry[]> {
    return this.#measure('find', () => this.#inner.findByAddress(address, signal))
  }

  verifyPassword(account: AccountEntry, password: string, signal?: AbortSignal): Promise<'ok' | 'mismatch'> {
    return this.#measure('verify_password', () => this.#inner.verifyPassword(account, password, signal))
  }

  ping(signal?: AbortSignal): Promise<void> {
    return this.#measure('ping', () => this.#inner.ping(signal))
  }

  close(): Promise<void> {
    return this.#inner.close()
  }

  async #measure<T>(operation: string, call: () => Promise<T>): Promise<T> {
    const directory = this.#inner.kind
    const started = performance.now()
    const seconds = () => (performance.now() - started) / 1000
    try {
      const result = await call()
      this.#lastAnswerAt = this.#now()
      this.#metrics.directoryCallSeconds.observe({ directory, operation, result: 'ok' }, seconds())
      return result
    } catch (e) {
      // A data error (duplicate owners, an unusable hash) is the directory answering.
      if (!(e instanceof DirectoryError)) this.#lastAnswerAt = this.#now()
      this.#metrics.directoryCallSeconds.observe({ directory, operation, result: 'error' }, seconds())
      this.#metrics.directoryErrors.inc({ directory, operation, code: codeOf(e) })
      throw e
    }
  }
}
