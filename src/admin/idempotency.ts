// Idempotency keys for creates: a client that lost the answer to a POST retries with the same
// key and gets the first answer again, instead of a second account or a 409 it cannot explain.
// Keys are per actor (token name). The claim row is inserted before the work runs, so two
// concurrent requests with one key cannot both run it; the second is told to wait (409).

import { createHash } from 'node:crypto'
import { AdminError, ErrorCodes } from '../errors.js'
import type { Store } from '../store/store.js'

export interface StoredAnswer {
  readonly status: number
  readonly body: unknown
}

export type Claim =
  /** New key: run the request, then finish() or release(). */
  | { readonly kind: 'new' }
  /** Seen before with the same request: send this answer again. */
  | { readonly kind: 'replay'; readonly answer: StoredAnswer }

export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/

export class IdempotencyKeys {
  #lastSweep = 0

  constructor(
    private readonly store: Store,
    private readonly ttlMs: number,
  ) {}

  static requestHash(method: string, path: string, body: unknown): string {
    return createHash('sha256').update(`${method} ${path}\n${JSON.stringify(body ?? null)}`).digest('hex')
  }

  async claim(actor: string, key: string, requestHash: string): Promise<Claim> {
    await this.#sweep()
    const inserted = await this.store.query(
      `insert into idempotency_keys (actor, key, request_hash) values ($1, $2, $3) on conflict do nothing returning key`,
      [actor, key, requestHash],
    )
    if (inserted.rows.length === 1) return { kind: 'new' }
    const { rows } = await this.store.query<{ request_hash: string; status: number | null; body: unknown; expired: boolean }>(
      `select request_hash, status, body, created_at < now() - $3::double precision * interval '1 millisecond' as expired
         from idempotency_keys where actor = $1 and key = $2`,
      [actor, key, this.ttlMs],
    )
    const row = rows[0]
    // Gone meanwhile (swept or released): claim it afresh.
    if (!row) return this.claim(actor, key, requestHash)
    if (row.expired) {
      await this.store.query('delete from idempotency_keys where actor = $1 and key = $2 and request_hash = $3', [actor, key, row.request_hash])
      return this.claim(actor, key, requestHash)
    }
    if (row.request_hash !== requestHash) {
      throw new AdminError(ErrorCodes.IDEMPOTENCY_MISMATCH, 'this Idempotency-Key was used for a different request')
    }
    if (row.status === null) throw new AdminError(ErrorCodes.IDEMPOTENCY_IN_PROGRESS, 'a request with this Idempotency-Key is still being processed')
    return { kind: 'replay', answer: { status: row.status, body: row.body } }
  }

  /** Remembers the answer (success or refusal) for retries. */
  async finish(actor: string, key: string, answer: StoredAnswer): Promise<void> {
    await this.store.query('update idempotency_keys set status = $3, body = $4::jsonb where actor = $1 and key = $2', [
      actor,
      key,
      answer.status,
      JSON.stringify(answer.body ?? null),
    ])
  }

  /** Forgets a claim whose request failed for a reason a retry may not meet (5xx). */
  async release(actor: string, key: string): Promise<void> {
    await this.store.query('delete from idempotency_keys where actor = $1 and key = $2 and status is null', [actor, key])
  }

  /** Deletes expired keys, at most once a minute, so the table stays small without a timer. */
  async #sweep(): Promise<void> {
    const now = Date.now()
    if (now - this.#lastSweep < 60_000) return
    this.#lastSweep = now
    await this.store.query(`delete from idempotency_keys where created_at < now() - $1::double precision * interval '1 millisecond'`, [this.ttlMs])
  }
}
