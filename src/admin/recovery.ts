// Finishes what stopped admin requests left half-done (docs/operations.md, "After a crash"): open
// intents of dead instances (LDAP writes whose outcome was not recorded), Idempotency-Keys whose
// request died, and copy hooks whose instance is gone. Runs at start, before the admin API takes
// requests, and then every few seconds, so the work of an instance that died while others kept
// running is taken over too. Each step is safe to run on several instances at once: intents
// are locked while they are resolved, and every takeover re-checks its row under a lock.

import { aliveSql } from '../cluster/presence.js'
import { describeError } from '../errors.js'
import type { Accounts } from './accounts.js'
import type { AdminDeps } from './context.js'
import type { IdempotencyKeys } from './idempotency.js'
import { Intents, type Intent } from './intents.js'
import type { Moves } from './moves.js'

/** How often a running instance looks for the half-done work of dead ones. */
export const RECOVERY_INTERVAL_MS = 5_000

export class Recovery {
  readonly #intents: Intents
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined

  constructor(
    private readonly d: AdminDeps,
    private readonly accounts: Accounts,
    private readonly moves: Moves,
    private readonly keys: IdempotencyKeys,
  ) {
    this.#intents = new Intents(d.store, d.instance)
    keys.resolveOrphan = (actor, key) => this.#resolveKey(actor, key)
  }

  /** The first pass (awaited; a failure is logged, not fatal), then the periodic ones. */
  async start(): Promise<void> {
    await this.run()
    const timer = setInterval(() => void this.run(), RECOVERY_INTERVAL_MS)
    timer.unref()
    this.#timer = timer
  }

  async close(): Promise<void> {
    clearInterval(this.#timer)
    await this.#running
  }

  /** One pass; passes never overlap. */
  run(): Promise<void> {
    this.#running ??= this.#pass().finally(() => (this.#running = undefined))
    return this.#running
  }

  async #pass(): Promise<void> {
    try {
      const busy = new Set([...this.accounts.busy, ...this.moves.busy])
      for (const intent of await this.#intents.orphans(busy)) await this.#resolve(intent)
      const freed = await this.keys.releaseOrphans()
      if (freed > 0) this.d.logger.warn({ keys: freed }, 'Idempotency-Keys of stopped requests freed: nothing was written for them, a retry runs afresh')
      await this.moves.recoverHooks()
      await this.d.store.query(`delete from instances where id <> $1 and not ${aliveSql('id', '$2')}`, [this.d.instance.id, this.d.instance.leaseMs])
      await this.#intents.sweep()
    } catch (e) {
      this.d.logger.error({ err: describeError(e) }, 'recovering the work of stopped requests failed; retrying in a few seconds')
    }
  }

  async #resolve(intent: Intent): Promise<void> {
    if (intent.kind === 'move-complete') await this.moves.resolve(intent)
    else await this.accounts.resolve(intent)
  }

  /** A retry met a key whose request died: settle the intent it left, if any. */
  async #resolveKey(actor: string, key: string): Promise<void> {
    for (const intent of await this.#intents.forKey(actor, key)) await this.#resolve(intent)
  }
}
