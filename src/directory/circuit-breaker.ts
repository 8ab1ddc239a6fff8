// Stops calling a directory that keeps failing. Without it, every lookup during an outage
// waits for a connect or operation timeout before the cache may serve a stale answer; with
// it, after `failureThreshold` consecutive failures calls fail at once for `openForMs`, then
// a single trial call decides whether to close again. Data errors (duplicates) mean the
// directory answered, so they count as success here.

import type { Logger } from 'pino'
import { DirectoryError, ErrorCodes } from '../errors.js'
import type { AccountEntry, Directory, DirectoryEntry } from './directory.js'

export type CircuitState = 'closed' | 'open' | 'half-open'

export interface CircuitOptions {
  readonly failureThreshold: number
  readonly openForMs: number
  readonly now?: () => number
}

export class CircuitBreakerDirectory implements Directory {
  readonly #inner: Directory
  readonly #opts: CircuitOptions
  readonly #now: () => number
  readonly #logger: Logger
  #failures = 0
  #openedAt = 0
  #state: CircuitState = 'closed'
  #trialInFlight = false

  constructor(inner: Directory, opts: CircuitOptions, logger: Logger) {
    this.#inner = inner
    this.#opts = opts
    this.#now = opts.now ?? (() => performance.now())
    this.#logger = logger
  }

  get kind() {
    return this.#inner.kind
  }

  get state(): CircuitState {
    return this.#state
  }

  /**
   * False while calls would be refused at once (open, trial not yet due, or a trial running).
   * Lets callers skip the whole call, and the error it would build, during an outage.
   */
  get accepting(): boolean {
    if (this.#state === 'closed') return true
    if (this.#state === 'open') return this.#now() - this.#openedAt >= this.#opts.openForMs
    return !this.#trialInFlight
  }

  /** The error a refused call fails with (one instance: an outage must not allocate per request). */
  readonly refusal = new DirectoryError(ErrorCodes.DIRECTORY_CIRCUIT_OPEN, 'directory failing; not called for now')

  findByAddress(address: string, signal?: AbortSignal): Promise<DirectoryEntry[]> {
    return this.#call(() => this.#inner.findByAddress(address, signal))
  }

  /** A wrong password is the directory answering: it counts as success here. */
  verifyPassword(account: AccountEntry, password: string, signal?: AbortSignal): Promise<'ok' | 'mismatch'> {
    return this.#call(() => this.#inner.verifyPassword(account, password, signal))
  }

  /** Admits the call (or refuses it at once), then records how it went. */
  async #call<T>(fn: () => Promise<T>): Promise<T> {
    const trial = this.#admit()
    try {
      const result = await fn()
      this.#succeeded()
      return result
    } catch (e) {
      if (e instanceof DirectoryError) this.#failed(e)
      else this.#succeeded()
      throw e
    } finally {
      if (trial) this.#trialInFlight = false
    }
  }

  async ping(signal?: AbortSignal): Promise<void> {
    try {
      await this.#inner.ping(signal)
      this.#succeeded()
    } catch (e) {
      if (e instanceof DirectoryError) this.#failed(e)
      throw e
    }
  }

  close(): Promise<void> {
    return this.#inner.close()
  }

  /** Throws while open; returns true when this call is the half-open trial. */
  #admit(): boolean {
    if (this.#state === 'closed') return false
    if (this.#state === 'open' && this.#now() - this.#openedAt >= this.#opts.openForMs) {
      this.#state = 'half-open'
    }
    if (this.#state === 'half-open' && !this.#trialInFlight) {
      this.#trialInFlight = true
      return true
    }
    throw this.refusal
  }

  #succeeded(): void {
    if (this.#state !== 'closed') this.#logger.info({ directory: this.#inner.kind }, 'directory answering again; circuit closed')
    this.#state = 'closed'
    this.#failures = 0
  }

  #failed(e: DirectoryError): void {
    this.#failures++
    if (this.#state === 'half-open' || (this.#state === 'closed' && this.#failures >= this.#opts.failureThreshold)) {
      if (this.#state === 'closed') {
        this.#logger.warn(
          { directory: this.#inner.kind, failures: this.#failures, err: e.message, openForMs: this.#opts.openForMs },
          'directory failing; circuit open: answering from cache or with temporary failures',
        )
      }
      this.#state = 'open'
      this.#openedAt = this.#now()
    }
  }
}
