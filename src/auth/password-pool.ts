// Password hashing off the event loop. Argon2id at its default cost takes ~60 ms of CPU per
// check, and the event loop that computes it answers nothing else meanwhile: 8 concurrent wrong
// passwords took the p99 of cached socketmap lookups from 2-3 ms to ~100 ms. The costly schemes
// (passwords.ts: verifyIsCostly, hashIsCostly) therefore run here, on a fixed set of worker
// threads with a bounded queue in front; PLAIN and salted SHA stay on the caller's thread.
//
// - Beyond the queue a job fails at once with ErrorCodes.PASSWORD_BUSY, a temporary failure: a login
//   storm gets "try again later", never "wrong password", and never a queue that outlives the
//   deadlines of the logins waiting in it.
// - A queued job whose caller gave up (the login's deadline) is dropped unrun. A running one is
//   let finish (killing it would waste the work done, and under overload, when every check
//   outlives its deadline, no check would ever finish), unless it is still running
//   ABANDONED_GRACE_MS later: then its worker is replaced, so a stored value of absurd cost
//   (Argon2 t=10^9) cannot hold a worker forever.
// - A worker that dies fails its job with ErrorCodes.PASSWORD_WORKER (temporary) and is replaced, after
//   a pause that grows while replacements keep dying (a broken install must not spin).
// - Workers may run at a lower priority (niceness, set in password-worker.ts): when lookups and
//   hashes compete for the cores, lookups win, and idle cores still go to the hashes.
// - Idle workers do not keep the process alive (unref); close() ends them all.
//
// Why not piscina: it does all of the above but brings an optional native addon (@napi-rs/nice,
// for the priority) into an image that has none, and we would still map its errors (by message
// text) onto our closed set of outcomes. What we need is one job type, fixed size, FIFO: this file.

import { Worker } from 'node:worker_threads'
import { MailhostdError, ErrorCodes } from '../errors.js'
import { LogThrottle, type Logger } from '../log.js'
import { DEFAULT_SCHEME, hashIsCostly, hashPassword, verifyIsCostly, verifyPassword, type PasswordHasher, type Scheme, type VerifyResult } from './passwords.js'
import type { PasswordWorkerData } from './password-worker.js'
import { SchemeRefusals } from './scheme-refusals.js'
import { UnsupportedSchemeError } from './scheme-support.js'

/** The jobs, and what became of each: the closed label sets of mailhostd_password_jobs_total. */
export const PASSWORD_OPERATIONS = ['verify', 'hash'] as const
export const PASSWORD_JOB_OUTCOMES = ['done', 'busy', 'crashed', 'abandoned', 'closed'] as const
export type PasswordOperation = (typeof PASSWORD_OPERATIONS)[number]
export type PasswordJobOutcome = (typeof PASSWORD_JOB_OUTCOMES)[number]

/** What the pool posts to a worker. */
export type PasswordJob =
  | { readonly id: number; readonly op: 'verify'; readonly stored: string; readonly plain: string }
  | { readonly id: number; readonly op: 'hash'; readonly plain: string; readonly scheme: Scheme }

/** An error thrown in a worker, in a form that survives postMessage (classes do not). */
export type WorkerError =
  | { readonly kind: 'scheme'; readonly scheme: string | undefined; readonly problem: string }
  | { readonly kind: 'range' | 'other'; readonly message: string }

/** What a worker posts back: the stored value or VerifyResult, or the error. */
export type PasswordReply = { readonly id: number; readonly ok: true; readonly value: string } | { readonly id: number; readonly ok: false; readonly error: WorkerError }

export interface PasswordPoolOptions {
  /** Worker threads, at least 1. */
  readonly workers: number
  /** Jobs that may wait for a worker; more fail at once with ErrorCodes.PASSWORD_BUSY. */
  readonly maxQueue: number
  /**
   * How much nicer than the daemon the workers run (Linux nice increment, 0-19): the kernel then
   * gives a core to the event loop (lookups) first whenever both want one, while a core nobody
   * else wants still goes to the hashes at full speed. 0: the daemon's own priority.
   */
  readonly niceness?: number
  readonly logger: Logger
  /** Told of every job handed to the pool, once it is settled. */
  readonly onJob?: (operation: PasswordOperation, outcome: PasswordJobOutcome) => void
  /** Told of every stored value refused as unverifiable, with its scheme's metric label (scheme-refusals.ts). */
  readonly onSchemeRefused?: (scheme: string) => void
  /** The worker's module; tests pass one that can be made to die. */
  readonly workerUrl?: URL
  /** ABANDONED_GRACE_MS unless a test needs it shorter. */
  readonly abandonedGraceMs?: number
}

// Under the test runner this module is TypeScript and so is its worker; built, both are .js.
const WORKER_URL = new URL(`./password-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url)
/** Longest pause before replacing a worker when replacements keep dying at once. */
const MAX_RESPAWN_DELAY_MS = 10_000
/**
 * How long a job may go on computing after its caller gave up, before its worker is replaced:
 * far longer than any check at a sane cost (~60 ms at the defaults, seconds at Dovecot's
 * strongest settings), far shorter than a worker lost for good.
 */
export const ABANDONED_GRACE_MS = 30_000

interface Pending {
  /** Answered (resolved, rejected, or given up by its caller): later outcomes are not reported. */
  settled: boolean
  readonly job: PasswordJob
  readonly resolve: (value: string) => void
  readonly reject: (e: unknown) => void
  readonly signal: AbortSignal | undefined
  readonly onAbort: () => void
}

interface Slot {
  /** Undefined while a replacement waits for its pause. */
  worker: Worker | undefined
  running: Pending | undefined
  respawn: NodeJS.Timeout | undefined
  /** Replaces the worker if its abandoned job is still running after ABANDONED_GRACE_MS. */
  reaper: NodeJS.Timeout | undefined
}

export class PasswordPool implements PasswordHasher {
  readonly #o: PasswordPoolOptions
  readonly #slots: Slot[] = []
  readonly #queue: Pending[] = []
  readonly #throttle = new LogThrottle(60_000)
  readonly #refusals: SchemeRefusals
  #nextId = 1
  /** Workers that died in a row without a job completing in between. */
  #deaths = 0
  #closed = false

  constructor(options: PasswordPoolOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 1) throw new RangeError('a password pool needs at least one worker')
    this.#o = options
    this.#refusals = new SchemeRefusals({ logger: options.logger, ...(options.onSchemeRefused ? { onRefused: options.onSchemeRefused } : {}) })
    for (let i = 0; i < options.workers; i++) {
      const slot: Slot = { worker: undefined, running: undefined, respawn: undefined, reaper: undefined }
      this.#slots.push(slot)
      this.#spawn(slot)
    }
  }

  /** Jobs waiting for a worker. */
  get waiting(): number {
    return this.#queue.length
  }

  /** Workers computing a job now. */
  get busy(): number {
    return this.#slots.filter((s) => s.running !== undefined).length
  }

  /** Live worker threads (a replacement in its pause is not one). */
  get threads(): number {
    return this.#slots.filter((s) => s.worker !== undefined).length
  }

  /** Every login endpoint's check passes here: refusals are logged (once per scheme) and counted here too. */
  verify(stored: string, plain: string, signal?: AbortSignal): Promise<VerifyResult> {
    const check = verifyIsCostly(stored) ? (this.#submit({ id: this.#nextId++, op: 'verify', stored, plain }, signal) as Promise<VerifyResult>) : verifyPassword(stored, plain)
    return check.catch((e: unknown) => {
      if (e instanceof UnsupportedSchemeError) this.#refusals.record(e)
      throw e
    })
  }

  hash(plain: string, scheme: Scheme = DEFAULT_SCHEME): Promise<string> {
    if (!hashIsCostly(scheme)) return hashPassword(plain, scheme)
    return this.#submit({ id: this.#nextId++, op: 'hash', plain, scheme }, undefined)
  }

  /** Fails what waits or runs with a temporary failure and ends every worker. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const p of this.#queue.splice(0)) this.#settle(p, 'closed', closedError())
    const ending: Promise<number>[] = []
    for (const slot of this.#slots) {
      clearTimeout(slot.respawn)
      clearTimeout(slot.reaper)
      if (slot.running) this.#settle(slot.running, 'closed', closedError())
      slot.running = undefined
      if (slot.worker) ending.push(slot.worker.terminate())
      slot.worker = undefined
    }
    await Promise.all(ending)
  }

  #submit(job: PasswordJob, signal: AbortSignal | undefined): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const p: Pending = { settled: false, job, resolve, reject, signal, onAbort: () => this.#abandon(p) }
      if (this.#closed) return this.#settle(p, 'closed', closedError())
      if (signal?.aborted) return this.#settle(p, 'abandoned', abandonedError())
      const idle = this.#slots.find((s) => s.worker !== undefined && s.running === undefined)
      if (idle === undefined && this.#queue.length >= this.#o.maxQueue) return this.#settle(p, 'busy', busyError())
      signal?.addEventListener('abort', p.onAbort, { once: true })
      if (idle !== undefined) return this.#start(idle, p)
      this.#queue.push(p)
      // A job waiting for a replacement worker keeps the process alive until it has run.
      for (const slot of this.#slots) slot.respawn?.ref()
    })
  }

  #start(slot: Slot, p: Pending): void {
    slot.running = p
    // Held only while computing, so an idle pool never keeps a process (a test, a tool) alive.
    slot.worker!.ref()
    slot.worker!.postMessage(p.job)
  }

  /** Starts waiting jobs on idle workers, oldest first. */
  #drain(): void {
    for (const slot of this.#slots) {
      if (this.#queue.length === 0) return
      if (slot.worker === undefined || slot.running !== undefined) continue
      this.#start(slot, this.#queue.shift()!)
    }
  }

  #abandon(p: Pending): void {
    const queued = this.#queue.indexOf(p)
    if (queued !== -1) {
      this.#queue.splice(queued, 1)
      return this.#settle(p, 'abandoned', abandonedError())
    }
    const slot = this.#slots.find((s) => s.running === p)
    if (slot === undefined) return
    this.#settle(p, 'abandoned', abandonedError())
    // Nobody waits for the result; the worker finishes it, or is replaced (see the header).
    const grace = this.#o.abandonedGraceMs ?? ABANDONED_GRACE_MS
    slot.reaper = setTimeout(() => {
      if (this.#closed || slot.running !== p) return
      const worker = slot.worker!
      slot.running = undefined
      slot.worker = undefined
      this.#o.logger.warn({ graceMs: grace }, 'a password check still ran long after its caller gave up; replacing its worker thread')
      void worker.terminate()
      this.#spawn(slot)
      this.#drain()
    }, grace)
    slot.reaper.unref()
  }

  #spawn(slot: Slot): void {
    slot.respawn = undefined
    const workerData: PasswordWorkerData = { niceness: this.#o.niceness ?? 0 }
    const worker = new Worker(this.#o.workerUrl ?? WORKER_URL, { name: 'mailhostd password', workerData })
    worker.unref()
    slot.worker = worker
    worker.on('message', (reply: PasswordReply) => this.#replied(slot, worker, reply))
    // Without an 'error' listener a worker's uncaught exception would be thrown in this thread
    // and end the daemon; 'exit' follows it and does the rest.
    worker.on('error', (e) => this.#o.logger.debug({ err: e.message }, 'password worker failed'))
    worker.on('exit', (code) => this.#exited(slot, worker, code))
  }

  #replied(slot: Slot, worker: Worker, reply: PasswordReply): void {
    const p = slot.running
    if (slot.worker !== worker || p === undefined || p.job.id !== reply.id) return
    slot.running = undefined
    clearTimeout(slot.reaper)
    worker.unref()
    this.#deaths = 0
    if (reply.ok) this.#settle(p, 'done', undefined, reply.value)
    else this.#settle(p, 'done', fromWorker(reply.error, p.job.plain))
    this.#drain()
  }

  #exited(slot: Slot, worker: Worker, code: number): void {
    // Ended by close() or by #abandon, which replaced it already.
    if (this.#closed || slot.worker !== worker) return
    slot.worker = undefined
    clearTimeout(slot.reaper)
    const lost = slot.running
    slot.running = undefined
    if (lost) this.#settle(lost, 'crashed', new MailhostdError(ErrorCodes.PASSWORD_WORKER, 'the password worker computing this check stopped; it is being replaced'))
    this.#deaths++
    const delayMs = this.#deaths <= 1 ? 0 : Math.min(MAX_RESPAWN_DELAY_MS, 100 * 2 ** (this.#deaths - 2))
    this.#throttle.run('exit', (suppressed) =>
      this.#o.logger.error({ code, lostJob: lost !== undefined, replaceInMs: delayMs, suppressed }, 'a password worker thread stopped; replacing it'),
    )
    if (delayMs === 0) {
      this.#spawn(slot)
      this.#drain()
      return
    }
    slot.respawn = setTimeout(() => {
      if (this.#closed) return
      this.#spawn(slot)
      this.#drain()
    }, delayMs)
    if (this.#queue.length === 0) slot.respawn.unref()
  }

  #settle(p: Pending, outcome: PasswordJobOutcome, error: unknown, value?: string): void {
    if (p.settled) return
    p.settled = true
    p.signal?.removeEventListener('abort', p.onAbort)
    this.#o.onJob?.(p.job.op, outcome)
    if (error === undefined) p.resolve(value!)
    else p.reject(error)
  }
}

const busyError = () => new MailhostdError(ErrorCodes.PASSWORD_BUSY, 'too many password checks waiting; try again later')
const closedError = () => new MailhostdError(ErrorCodes.PASSWORD_WORKER, 'password checks stopped: shutting down')
const abandonedError = () => new MailhostdError(ErrorCodes.PASSWORD_WORKER, 'password check abandoned by its caller')

/** The error the worker caught, as the calling thread would have caught it computing inline. */
function fromWorker(e: WorkerError, plain: string): Error {
  if (e.kind === 'scheme') return new UnsupportedSchemeError(e.scheme, e.problem)
  // Defence in depth: no library message should carry the password, but none reaches a log if one did.
  const message = plain === '' ? e.message : e.message.split(plain).join('[redacted]')
  return e.kind === 'range' ? new RangeError(message) : new Error(message)
}
