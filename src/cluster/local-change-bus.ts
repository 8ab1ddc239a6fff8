// Change notifications inside one process, for the embedded PGlite store (a single instance, so
// no other process needs telling). Same contract as the PostgreSQL bus: a change published with
// the transaction that made it is delivered once that transaction has committed, never for a
// rollback, because a cache evicted before the commit would fetch and keep the old answer.
//
// Store.transaction has no commit hook, so the bus asks the database instead: it notes the
// transaction's id, and delivers once pg_xact_status says committed. PGlite runs one statement
// at a time and holds others back until an open transaction ends, so that question is answered
// right after the commit or rollback; on a store where it could overtake the transaction
// ("in progress"), it is simply asked again.

import { setTimeout as sleep } from 'node:timers/promises'
import { describeError } from '../errors.js'
import type { Logger } from '../log.js'
import type { Queryable } from '../store/store.js'
import { Subscribers, type Change, type ChangeBus, type ChangeEvent } from './changes.js'

export interface LocalChangeBusOptions {
  /** The store the transactions belong to; asked whether they committed. */
  readonly store: Queryable
  readonly logger: Logger
}

const POLL_FIRST_MS = 5
const POLL_MAX_MS = 200

type Handler = (event: ChangeEvent) => void

export class LocalChangeBus implements ChangeBus {
  readonly #store: Queryable
  readonly #log: Logger
  readonly #subscribers: Subscribers
  #closed = false

  constructor(options: LocalChangeBusOptions) {
    this.#store = options.store
    this.#log = options.logger.child({ component: 'change-bus' })
    this.#subscribers = new Subscribers(this.#log)
  }

  /**
   * Without `tx` subscribers hear the change before this resolves. With `tx` it resolves at once
   * (it runs inside the transaction, which cannot end while publish is awaited) and delivery
   * follows the commit.
   */
  async publish(change: Change, tx?: Queryable): Promise<void> {
    if (this.#closed) return
    if (!tx) {
      this.#subscribers.emit(change)
      return
    }
    const { rows } = await tx.query<{ xid: string }>('select pg_current_xact_id()::text as xid')
    const xid = rows[0]?.xid
    if (xid === undefined) throw new Error('the store did not name the current transaction')
    void this.#afterCommit(xid, change)
  }

  subscribe(handler: Handler): void {
    this.#subscribers.add(handler)
  }

  close(): Promise<void> {
    // Changes still waiting for their commit are dropped: nobody is left to hear them.
    this.#closed = true
    return Promise.resolve()
  }

  async #afterCommit(xid: string, change: Change): Promise<void> {
    let delay = POLL_FIRST_MS
    for (;;) {
      let status: string | null
      try {
        const { rows } = await this.#store.query<{ status: string | null }>('select pg_xact_status($1::xid8) as status', [xid])
        status = rows[0]?.status ?? null
      } catch (e) {
        if (this.#closed) return
        // Unknown fate: an eviction too many only costs a directory query; one too few serves
        // a wrong answer until the TTL runs out.
        this.#log.warn({ kind: change.kind, reason: describeError(e) }, 'change bus: cannot tell whether a transaction committed; delivering its change')
        status = null
      }
      if (this.#closed) return
      if (status === 'in progress') {
        await sleep(delay)
        delay = Math.min(delay * 2, POLL_MAX_MS)
        continue
      }
      // committed, or too old to tell (null): deliver, for the same reason as above.
      if (status !== 'aborted') this.#subscribers.emit(change)
      return
    }
  }

}
