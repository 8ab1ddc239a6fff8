// Runs the configured copy hook once per move, a few at a time, without a shell (argv only, so
// no account name is ever parsed as shell syntax). A hook that runs past its timeout is
// killed; its exit decides copied or failed. Only the tail of its output is kept, for the
// move's detail: a copy tool can be chatty. The hook's environment is made, not inherited
// (hookEnvironment): the daemon's own holds its secrets.

import { spawn, type ChildProcess } from 'node:child_process'
import { toMs } from '../config/duration.js'
import { HOOK_BASE_ENVIRONMENT, type DurationValue } from '../config/schema.js'
import type { Logger } from '../log.js'

export type HookOutcome = { readonly ok: true } | { readonly ok: false; readonly detail: string }

export interface HookRunnerOptions {
  readonly argv: readonly string[]
  readonly timeout: DurationValue
  readonly concurrency: number
  /** Further variables of mailhostd's environment the hook gets (admin.moves.hookEnvironment). */
  readonly environment: readonly string[]
  readonly logger: Logger
}

/**
 * A hook's whole environment: the variables of `from` (mailhostd's) named by
 * HOOK_BASE_ENVIRONMENT or `names`, when set, then the move's MAILHOSTD_ variables. Nothing else:
 * the daemon's environment holds the secrets its `*Env` config keys name (and whatever else its
 * service manager put there), and a copy tool needs none of them. The config refuses `names`
 * that hold a secret (config/load.ts).
 */
export function hookEnvironment(from: NodeJS.ProcessEnv, names: readonly string[], move: Readonly<Record<string, string>>): Record<string, string> {
  const env: Record<string, string> = {}
  for (const name of [...HOOK_BASE_ENVIRONMENT, ...names]) {
    const value = from[name]
    if (value !== undefined) env[name] = value
  }
  return { ...env, ...move }
}

/** Output kept per run, and how much of it a failed move's detail shows. */
const TAIL_BYTES = 4096
const DETAIL_CHARS = 1000
/** After SIGTERM, a hook gets this long before SIGKILL. */
const KILL_GRACE_MS = 10_000

export class HookRunner {
  readonly #queue: { id: number; env: Record<string, string> }[] = []
  readonly #running = new Map<number, { child: ChildProcess; why?: string }>()
  readonly #timeoutMs: number
  #closed = false

  constructor(
    private readonly o: HookRunnerOptions,
    /** Moves the move to copying; false when it is no longer pending (aborted meanwhile). */
    private readonly claim: (id: number) => Promise<boolean>,
    private readonly ended: (id: number, outcome: HookOutcome) => Promise<void>,
  ) {
    this.#timeoutMs = toMs(o.timeout)
  }

  enqueue(id: number, env: Record<string, string>): void {
    if (this.#closed) return
    this.#queue.push({ id, env })
    this.#next()
  }

  /** Drops a queued move, or stops its running hook (the move was aborted). */
  cancel(id: number): void {
    const i = this.#queue.findIndex((q) => q.id === id)
    if (i >= 0) this.#queue.splice(i, 1)
    const run = this.#running.get(id)
    if (run) this.#stop(run, 'the move was aborted')
  }

  get running(): number {
    return this.#running.size
  }

  /** Stops every running hook and waits for their moves to be recorded as failed. */
  async close(): Promise<void> {
    this.#closed = true
    this.#queue.length = 0
    const exits = [...this.#running.values()].map(
      (run) =>
        new Promise<void>((resolve) => {
          run.child.once('close', () => resolve())
          this.#stop(run, 'mailhostd stopped while the hook ran')
        }),
    )
    await Promise.all(exits)
    // Let the 'close' handlers record their outcomes before the store goes away.
    while (this.#claiming + this.#finishing > 0) await new Promise((r) => setTimeout(r, 10))
  }

  /** Claims under way: they hold a slot, like running hooks. */
  #claiming = 0
  /** Outcomes being recorded: close() waits for them. */
  #finishing = 0

  #next(): void {
    while (!this.#closed && this.#running.size + this.#claiming < this.o.concurrency && this.#queue.length > 0) {
      const job = this.#queue.shift()!
      this.#claiming++
      void this.claim(job.id)
        .then((claimed) => {
          if (claimed && !this.#closed) this.#spawn(job.id, job.env)
          else if (claimed) void this.#finish(job.id, { ok: false, detail: 'mailhostd stopped before the hook ran' })
        })
        .catch((e: unknown) => this.o.logger.error({ move: job.id, err: String(e) }, 'could not claim a move for its hook'))
        .finally(() => {
          this.#claiming--
          this.#next()
        })
    }
  }

  #spawn(id: number, env: Record<string, string>): void {
    const [cmd, ...args] = this.o.argv as [string, ...string[]]
    let tail = ''
    const keep = (b: Buffer) => {
      tail = (tail + b.toString('utf8')).slice(-TAIL_BYTES)
    }
    const child = spawn(cmd, args, { env: hookEnvironment(process.env, this.o.environment, env), stdio: ['ignore', 'pipe', 'pipe'] })
    const run: { child: ChildProcess; why?: string } = { child }
    this.#running.set(id, run)
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    const timer = setTimeout(() => this.#stop(run, `the hook ran longer than ${this.#timeoutMs} ms`), this.#timeoutMs)
    timer.unref()
    this.o.logger.info({ move: id, account: env.MAILHOSTD_ACCOUNT, pid: child.pid }, 'move: copy hook started')
    let spawnError: string | undefined
    child.on('error', (e) => (spawnError = e.message))
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      this.#running.delete(id)
      const ok = code === 0 && run.why === undefined && spawnError === undefined
      const how = spawnError ?? run.why ?? (signal ? `killed by ${signal}` : `exit status ${code}`)
      this.o.logger[ok ? 'info' : 'warn']({ move: id, account: env.MAILHOSTD_ACCOUNT, result: ok ? 'copied' : how }, 'move: copy hook ended')
      const detail = `${how}${tail.trim() ? `: ${tail.trim().slice(-DETAIL_CHARS)}` : ''}`
      void this.#finish(id, ok ? { ok: true } : { ok: false, detail })
      this.#next()
    })
  }

  async #finish(id: number, outcome: HookOutcome): Promise<void> {
    this.#finishing++
    try {
      await this.ended(id, outcome)
    } finally {
      this.#finishing--
    }
  }

  #stop(run: { child: ChildProcess; why?: string }, why: string): void {
    run.why ??= why
    run.child.kill('SIGTERM')
    const kill = setTimeout(() => run.child.kill('SIGKILL'), KILL_GRACE_MS)
    kill.unref()
    run.child.once('close', () => clearTimeout(kill))
  }
}
