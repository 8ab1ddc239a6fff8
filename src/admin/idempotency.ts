// Idempotency keys for creates: a client that lost the answer to a POST retries with the same
// key and gets the first answer again, instead of a second account or a 409 it cannot explain.
// Keys are per actor (token name). The claim row is inserted before the work runs, so two
// concurrent requests with one key cannot both run it; the second is told to wait (409).
//
// A claim names the instance running its request (presence.ts) and carries a token. The write
// records its answer in its own transaction (seal), so "written" and "answered" commit
// together; a request that died (its instance is gone) leaves a claim that the next retry
// resolves: through the intent it left (an LDAP write whose fate is read back from LDAP), or,
// with none, as never having written anything, so the retry runs afresh. The token fences the
// dead request: should its process come back, it can no longer record an answer.

import { createHash, randomUUID } from 'node:crypto'
import { aliveSql, type Instance } from '../cluster/presence.js'
import { AdminError, ErrorCodes } from '../errors.js'
import type { Queryable, Store } from '../store/store.js'

export interface StoredAnswer {
  readonly status: number
  readonly body: unknown
}

/** The claim a request holds: what it needs to record its answer. */
export interface KeyClaim {
  readonly actor: string
  readonly key: string
  readonly token: string
}

export type Claim =
  /** New key: run the request, then finish() or release(). */
  | { readonly kind: 'new'; readonly claim: KeyClaim }
  /** Seen before with the same request: send this answer again. */
  | { readonly kind: 'replay'; readonly answer: StoredAnswer }

/** Settles whatever a dead request left for this key (its open intent); see Recovery. */
export type OrphanResolver = (actor: string, key: string) => Promise<void>

export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/

/**
 * Records a claim's answer. Throws when the claim is no longer this request's (taken over as
 * orphaned): inside a write's transaction that rolls the write back rather than answering twice.
 */
export async function recordAnswer(db: Queryable, claim: KeyClaim, answer: StoredAnswer): Promise<void> {
  const { rows } = await db.query('update idempotency_keys set status = $4, body = $5::jsonb where actor = $1 and key = $2 and token = $3 returning key', [
    claim.actor,
    claim.key,
    claim.token,
    answer.status,
    JSON.stringify(answer.body ?? null),
  ])
  if (rows.length === 0) {
    throw new AdminError(ErrorCodes.IDEMPOTENCY_IN_PROGRESS, 'this Idempotency-Key was taken over by a retry while the request ran')
  }
}

/**
 * The answer a create owes its Idempotency-Key. The service records it inside the transaction
 * that makes the write (seal), so a crash cannot leave the write without the answer; the route
 * records it afterwards only for writes that did not (refusals).
 */
export class PendingAnswer {
  #sealed = false

  constructor(readonly claim: KeyClaim) {}

  get sealed(): boolean {
    return this.#sealed
  }

  async seal(tx: Queryable, body: unknown): Promise<void> {
    await recordAnswer(tx, this.claim, { status: 201, body })
    this.#sealed = true
  }
}

/** Frees a claim that a resolved intent found nothing written for, so a retry runs afresh. */
export async function freeClaim(db: Queryable, claim: KeyClaim): Promise<void> {
  await db.query('delete from idempotency_keys where actor = $1 and key = $2 and token = $3 and status is null', [claim.actor, claim.key, claim.token])
}

export class IdempotencyKeys {
  #lastSweep = 0
  #resolveOrphan: OrphanResolver = () => Promise.resolve()

  constructor(
    private readonly store: Store,
    private readonly ttlMs: number,
    private readonly instance: Instance,
  ) {}

  static requestHash(method: string, path: string, body: unknown): string {
    return createHash('sha256').update(`${method} ${path}\n${JSON.stringify(body ?? null)}`).digest('hex')
  }

  /** Wired by the admin: resolves a dead request's open intent before its key is judged. */
  set resolveOrphan(f: OrphanResolver) {
    this.#resolveOrphan = f
  }

  async claim(actor: string, key: string, requestHash: string): Promise<Claim> {
    await this.#sweep()
    for (let attempt = 0; ; attempt++) {
      const token = randomUUID()
      const inserted = await this.store.query(
        `insert into idempotency_keys (actor, key, request_hash, owner, token) values ($1, $2, $3, $4, $5) on conflict do nothing returning key`,
        [actor, key, requestHash, this.instance.id, token],
      )
      if (inserted.rows.length === 1) return { kind: 'new', claim: { actor, key, token } }
      const { rows } = await this.store.query<{ request_hash: string; status: number | null; body: unknown; expired: boolean; orphaned: boolean }>(
        `select request_hash, status, body, created_at < now() - $3::double precision * interval '1 millisecond' as expired,
                (owner is null or not ${aliveSql('owner', '$4')}) as orphaned
           from idempotency_keys where actor = $1 and key = $2`,
        [actor, key, this.ttlMs, this.instance.leaseMs],
      )
      const row = rows[0]
      // Gone meanwhile (swept or released): claim it afresh.
      if (!row) continue
      if (row.expired) {
        await this.store.query('delete from idempotency_keys where actor = $1 and key = $2 and request_hash = $3', [actor, key, row.request_hash])
        continue
      }
      if (row.request_hash !== requestHash) {
        throw new AdminError(ErrorCodes.IDEMPOTENCY_MISMATCH, 'this Idempotency-Key was used for a different request')
      }
      if (row.status !== null) return { kind: 'replay', answer: { status: row.status, body: row.body } }
      // Its request is running on a live instance: wait, as before. Only once: a claim that is
      // orphaned again after being resolved means another retry raced this one, which is then
      // the request in progress.
      if (!row.orphaned || attempt > 0) throw new AdminError(ErrorCodes.IDEMPOTENCY_IN_PROGRESS, 'a request with this Idempotency-Key is still being processed')
      // Its request died. An intent it left gives the key its answer (or frees it); a claim
      // left without one never wrote anything, so the retry may run afresh.
      await this.#resolveOrphan(actor, key)
      await this.store.query(
        `delete from idempotency_keys where actor = $1 and key = $2 and status is null and (owner is null or not ${aliveSql('owner', '$3')})
            and not exists (select 1 from admin_intents i where i.idem_actor = $1 and i.idem_key = $2 and i.idem_token = idempotency_keys.token and i.state = 'open')`,
        [actor, key, this.instance.leaseMs],
      )
    }
  }

  /** Remembers the answer (success or refusal) for retries, when the write did not record it itself. */
  async finish(claim: KeyClaim, answer: StoredAnswer): Promise<void> {
    await recordAnswer(this.store, claim, answer)
  }

  /**
   * Forgets a claim whose request failed for a reason a retry may not meet (5xx), unless an
   * open intent holds it: the directory write may have landed, and resolving the intent gives
   * the key its answer.
   */
  async release(claim: KeyClaim): Promise<void> {
    await this.store.query(
      `delete from idempotency_keys k where actor = $1 and key = $2 and token = $3 and status is null
          and not exists (select 1 from admin_intents i where i.idem_actor = k.actor and i.idem_key = k.key and i.idem_token = k.token and i.state = 'open')`,
      [claim.actor, claim.key, claim.token],
    )
  }

  /**
   * Frees every key whose request died without leaving an intent: nothing was written for it.
   * Run at start and periodically, so keys never wait for a retry to be freed.
   */
  async releaseOrphans(): Promise<number> {
    const { rows } = await this.store.query(
      `delete from idempotency_keys k where status is null and (owner is null or not ${aliveSql('owner', '$1')})
          and not exists (select 1 from admin_intents i where i.idem_actor = k.actor and i.idem_key = k.key and i.idem_token = k.token and i.state = 'open')
        returning key`,
      [this.instance.leaseMs],
    )
    return rows.length
  }

  /** Deletes expired keys, at most once a minute, so the table stays small without a timer. */
  async #sweep(): Promise<void> {
    const now = Date.now()
    if (now - this.#lastSweep < 60_000) return
    this.#lastSweep = now
    await this.store.query(`delete from idempotency_keys where created_at < now() - $1::double precision * interval '1 millisecond'`, [this.ttlMs])
  }
}
