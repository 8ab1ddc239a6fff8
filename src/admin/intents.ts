// Intents: directory writes announced in the store before they are made, for a directory that is
// not the store (LDAP) and so cannot share its transaction. The order is always: the intent
// commits, the directory is written, then one store transaction records the outcome with its
// audit entry, its change notification and the Idempotency-Key's answer. A crash between the
// steps leaves an open intent whose owner is dead; Recovery reads the directory to learn whether
// the write landed and finishes it or marks it undone, so the audit entry is written exactly
// once and the key gets an answer or is freed.

import { aliveSql, type Instance } from '../cluster/presence.js'
import type { Queryable, Store } from '../store/store.js'
import type { KeyClaim } from './idempotency.js'

export const INTENT_KINDS = ['account-create', 'account-update', 'account-delete', 'move-complete'] as const
export type IntentKind = (typeof INTENT_KINDS)[number]

export interface Intent<P = unknown> {
  readonly id: number
  readonly kind: IntentKind
  /** The account's primary address, or the move's id. */
  readonly subject: string
  readonly actor: string
  readonly owner: string
  /** What recovery needs to tell whether the write landed, and to audit it. Never a secret. */
  readonly payload: P
  readonly claim: KeyClaim | undefined
  /** Milliseconds since it was opened, by the store's clock. */
  readonly ageMs: number
}

interface Row {
  id: string
  kind: IntentKind
  subject: string
  actor: string
  owner: string
  payload: unknown
  idem_actor: string | null
  idem_key: string | null
  idem_token: string | null
  age_ms: number
}

const COLUMNS = `id::text as id, kind, subject, actor, owner, payload, idem_actor, idem_key, idem_token,
  (extract(epoch from now() - created_at) * 1000)::float8 as age_ms`
/** Resolved intents are kept this long for an operator to read, then deleted. */
const KEEP_RESOLVED = '7 days'

const toIntent = (r: Row): Intent => ({
  id: Number(r.id),
  kind: r.kind,
  subject: r.subject,
  actor: r.actor,
  owner: r.owner,
  payload: r.payload,
  claim: r.idem_actor !== null && r.idem_key !== null && r.idem_token !== null ? { actor: r.idem_actor, key: r.idem_key, token: r.idem_token } : undefined,
  ageMs: r.age_ms,
})

export class Intents {
  constructor(
    private readonly store: Store,
    private readonly instance: Instance,
    /**
     * How long after it was opened an intent may be judged: a write sent by a process that died
     * just after sending it can still be applied by the directory server (it sits in the
     * server's socket buffer), so its outcome is read only once the directory's operation
     * timeout has passed.
     */
    readonly graceMs = 0,
  ) {}

  /** Announces a write (committed before it returns, so it survives the crash it guards against). */
  async open<P extends object>(kind: IntentKind, subject: string, actor: string, payload: P, claim: KeyClaim | undefined, db: Queryable = this.store): Promise<Intent<P>> {
    const { rows } = await db.query<Row>(
      `insert into admin_intents (kind, subject, actor, owner, payload, idem_actor, idem_key, idem_token)
       values ($1, $2, $3, $4, $5::jsonb, $6, $7, $8) returning ${COLUMNS}`,
      [kind, subject, actor, this.instance.id, JSON.stringify(payload), claim?.actor ?? null, claim?.key ?? null, claim?.token ?? null],
    )
    return toIntent(rows[0]!) as Intent<P>
  }

  /**
   * Records the outcome, in the transaction that also writes what goes with it. False when the
   * intent is not in state `from` (resolved already, as orphaned): the caller must then not
   * audit again.
   */
  async settle(tx: Queryable, id: number, outcome: 'done' | 'undone', from: 'open' | 'undone' = 'open'): Promise<boolean> {
    const { rows } = await tx.query(`update admin_intents set state = $2, resolved_at = now() where id = $1 and state = $3 returning id`, [id, outcome, from])
    return rows.length === 1
  }

  /** The state an intent ended in (after settle() said it was resolved elsewhere). */
  async stateOf(id: number): Promise<string | undefined> {
    const { rows } = await this.store.query<{ state: string }>('select state from admin_intents where id = $1', [id])
    return rows[0]?.state
  }

  /** Locks an open intent for resolving; undefined when it is resolved or being resolved. */
  async lock(tx: Queryable, id: number): Promise<Intent | undefined> {
    const { rows } = await tx.query<Row>(`select ${COLUMNS} from admin_intents where id = $1 and state = 'open' for update skip locked`, [id])
    return rows[0] && toIntent(rows[0])
  }

  /**
   * Open intents nobody is working on: their owner is dead, or they are this instance's own and
   * not in `busy` (a write whose outcome could not be recorded, for instance the store failing
   * right after LDAP answered). Those younger than graceMs may still change: see ageMs.
   */
  async orphans(busy: ReadonlySet<number>): Promise<Intent[]> {
    const { rows } = await this.store.query<Row>(
      `select ${COLUMNS} from admin_intents
        where state = 'open' and (owner = $1 or not ${aliveSql('owner', '$2')})
        order by id`,
      [this.instance.id, this.instance.leaseMs],
    )
    return rows.map(toIntent).filter((i) => !(i.owner === this.instance.id && busy.has(i.id)))
  }

  /** Open intents for one Idempotency-Key (at most one: one request per claim). */
  async forKey(actor: string, key: string): Promise<Intent[]> {
    const { rows } = await this.store.query<Row>(`select ${COLUMNS} from admin_intents where state = 'open' and idem_actor = $1 and idem_key = $2 order by id`, [actor, key])
    return rows.map(toIntent)
  }

  /** The open completion intent of a move, if any, and whether its owner is alive. */
  async openFor(kind: IntentKind, subject: string, db: Queryable = this.store): Promise<(Intent & { alive: boolean }) | undefined> {
    const { rows } = await db.query<Row & { alive: boolean }>(
      `select ${COLUMNS}, ${aliveSql('owner', '$3')} as alive from admin_intents where state = 'open' and kind = $1 and subject = $2 order by id limit 1`,
      [kind, subject, this.instance.leaseMs],
    )
    return rows[0] && { ...toIntent(rows[0]), alive: rows[0].alive }
  }

  /** Deletes resolved intents past their keeping time. */
  async sweep(): Promise<void> {
    await this.store.query(`delete from admin_intents where state <> 'open' and resolved_at < now() - interval '${KEEP_RESOLVED}'`)
  }
}
