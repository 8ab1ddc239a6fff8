// What one instance tells every other instance (and itself) after a write, so caches never serve
// an answer the write made wrong for longer than the notification takes. PostgreSQL
// LISTEN/NOTIFY carries them between instances; TTL is only the backstop.

import { describeError } from '../errors.js'
import type { Logger } from '../log.js'
import type { Queryable } from '../store/store.js'

export type Change =
  /**
   * Directory entries changed: evict every cached answer that consulted one of these canonical
   * addresses or directory entry ids (an alias reaching a moved account, `user+ext@` keys).
   */
  | { readonly kind: 'entries'; readonly addresses: readonly string[]; readonly ids: readonly string[] }
  /** Domains or backends changed: reload the registry (this drops the cache). */
  | { readonly kind: 'registry' }
  /** Moves started, completed or aborted: reload the set of accounts being moved. */
  | { readonly kind: 'moves' }
  /** A backend service went up or down: reload the health states (the cache stays). */
  | { readonly kind: 'health' }
  /** Pool pins were dropped or set in the store (flush, move-user): drop these local pins. */
  | { readonly kind: 'pins'; readonly pool: string; readonly member?: string; readonly address?: string }

export type ChangeEvent =
  | Change
  /**
   * Notifications may have been lost (the listening connection to PostgreSQL broke and came
   * back): drop the whole cache and reload the registry and the moves.
   */
  | { readonly kind: 'resync' }

export interface ChangeBus {
  /**
   * Announces a change to every instance, this one included. Given the transaction that made
   * the change, the notification is sent at its commit and never for a rollback; without one it
   * is sent at once (LDAP writes, which have no store transaction).
   */
  publish(change: Change, tx?: Queryable): Promise<void>
  /** Called for every change from any instance, in order, and for resyncs. */
  subscribe(handler: (event: ChangeEvent) => void): void
  close(): Promise<void>
}

/** The subscribers of one bus: every one hears every event, whatever another one throws. */
export class Subscribers {
  readonly #handlers: ((event: ChangeEvent) => void)[] = []

  constructor(private readonly log: Logger) {}

  add(handler: (event: ChangeEvent) => void): void {
    this.#handlers.push(handler)
  }

  emit(event: ChangeEvent): void {
    for (const handler of this.#handlers) {
      try {
        handler(event)
      } catch (e) {
        // One faulty subscriber must not keep the others from hearing about the change.
        this.log.error({ kind: event.kind, reason: describeError(e) }, 'change bus: a subscriber failed')
      }
    }
  }
}
