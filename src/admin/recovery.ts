// Finishes what stopped admin requests left half-done (docs/operations.md, "After a crash"): open
// intents of dead instances (LDAP writes whose outcome was not recorded), Idempotency-Keys whose
// request died, and copy hooks whose instance is gone. Runs at start, before the admin API takes
// requests, and then every few seconds, so the work of an instance that died while others kept
// running is taken over too. Each step is safe to run on several instances at once: intents
// are locked while they are resolved, and every takeover re-checks its row under a lock.

import { setTimeout as sleep } from 'node:timers/promises'
import { aliveSql } from '../cluster/presence.js'
import { describeError } from '../errors.js'
import type { Accounts } from './accounts.js'
import { intentsOf, type AdminDeps } from './context.js'
import type { IdempotencyKeys } from './idempotency.js'
import type { Intent, Intents } from './intents.js'
import type { Moves } from './moves.js'

/** How often a running instance looks for the half-done work of dead ones. */
export const RECOVERY_INTERVAL_MS = 5_000

export class Recovery {
  readonly #intents: Intents
  #timer: NodeJS.Timeout | undefined
  #running: Promise<number> | undefined

  constructor(
    private readonly d: AdminDeps,
    private readonly accounts: Accounts,
    private readonly moves: Moves,
    private readonly keys: IdempotencyKeys,
  ) {
    this.#intents = intentsOf(d)
    keys.resolveOrphan = (actor, key) => this.#resolveKey(actor, key)
  }

  /**
   * The first pass (awaited; a failure is logged, not fatal), then the periodic ones. Intents
   * too young to judge are waited for (at most the directory's write timeout), so that the API
   * opens on a consistent state.
   */
  async start(): Promise<void> {
    let wait = await this.run()
    for (let i = 0; wait > 0 && i < 3; i++) {
      await sleep(wait)
      wait = await this.run()
    }
    const timer = setInterval(() => void this.run(), RECOVERY_INTERVAL_MS)
    timer.unref()
    this.#timer = timer
  }

  async close(): Promise<void> {
    clearInterval(this.#timer)
    await this.#running
  }

  /**
   * One pass; passes never overlap. Resolves to how long until the youngest orphaned intent it
   * left can be judged (0: none left).
   */
  run(): Promise<number> {
    this.#running ??= this.#pass().finally(() => (this.#running = undefined))
    return this.#running
  }

  async #pass(): Promise<number> {
    let wait = 0
    try {
      const busy = new Set([...this.accounts.busy, ...this.moves.busy])
      for (const intent of await this.#intents.orphans(busy)) {
        const left = this.#intents.graceMs - intent.ageMs
        if (left > 0) {
          wait = Math.max(wait, left)
          continue
        }
        const failed = await this.#resolve(intent).then(
          () => false,
          (e: unknown) => {
            this.d.logger.error({ intent: intent.id, kind: intent.kind, subject: intent.subject, err: describeError(e) }, 'cannot resolve an intent of a stopped request yet (is the directory reachable?); retrying in a few seconds')
            return true
          },
        )
        // A directory that cannot answer one intent will not answer the next: leave the rest to
        // the next pass, so a start during an outage (the HTTP listener opens after this pass)
        // waits one directory timeout, not one per open intent.
        if (failed) break
      }
      const freed = await this.keys.releaseOrphans()
      if (freed > 0) this.d.logger.warn({ keys: freed }, 'Idempotency-Keys of stopped requests freed: nothing was written for them, a retry runs afresh')
      await this.moves.recoverHooks()
      await this.d.store.query(`delete from instances where id <> $1 and not ${aliveSql('id', '$2')}`, [this.d.instance.id, this.d.instance.leaseMs])
      await this.#intents.sweep()
    } catch (e) {
      this.d.logger.error({ err: describeError(e) }, 'recovering the work of stopped requests failed; retrying in a few seconds')
    }
    return wait
  }

  async #resolve(intent: Intent): Promise<void> {
    if (intent.kind === 'move-complete') await this.moves.resolve(intent)
    else await this.accounts.resolve(intent)
  }

  /**
   * A retry met a key whose request died: settle the intent it left, if any, waiting out the
   * intent's grace first (at most the directory's write timeout) so the answer is final.
   */
  async #resolveKey(actor: string, key: string): Promise<void> {
    for (const intent of await this.#intents.forKey(actor, key)) {
      const wait = this.#intents.graceMs - intent.ageMs
      if (wait > 0) await sleep(wait)
      await this.#resolve(intent)
    }
  }
}
