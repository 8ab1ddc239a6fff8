// Mailbox moves (docs/admin.md): start marks accounts moving (Postfix transport defers their
// mail, logins fail temporarily), an optional hook copies each mailbox, complete flips the
// mailHost to the target and clears the moving state, abort clears it and leaves the account
// where it was. The moving state lives in the store (moves rows in an unfinished state), so
// every instance sees it; the database's unique index allows one unfinished move per account.

import { toMs } from '../config/duration.js'
import { AdminError, ErrorCodes } from '../errors.js'
import type { Change } from '../cluster/changes.js'
import type { AccountRecord } from '../directory/accounts.js'
import type { Queryable } from '../store/store.js'
import { mailHostOf } from './accounts.js'
import { recordAudit, type AuditAction } from './audit.js'
import { applied, sqlState, writable, type AdminDeps } from './context.js'
import { HookRunner } from './move-hook.js'
import { canonicalAddress } from '../resolve/address.js'

export const MOVE_STATES = ['pending', 'copying', 'copied', 'failed', 'completed', 'aborted'] as const
export type MoveState = (typeof MOVE_STATES)[number]
/** States in which the account counts as moving. */
export const UNFINISHED: readonly MoveState[] = ['pending', 'copying', 'copied', 'failed']

/** Who the audit log names for transitions the hook makes. */
const SYSTEM_ACTOR = 'mailhostd'
/** Most accounts one request may move. */
export const MAX_BATCH = 10_000

export interface MoveView {
  id: number
  account: string
  source: { backend: string | null; mailHost: string }
  target: string
  state: MoveState
  detail: string | null
  actor: string
  createdAt: string
  updatedAt: string
  finishedAt: string | null
}

export interface StartRequest {
  target: string
  accounts?: string[]
  fromBackend?: string
  limit?: number
}

export interface MoveListRequest {
  state?: MoveState
  account?: string
  active?: boolean
  after?: number
  limit: number
}

interface Row {
  id: string
  account: string
  account_id: string
  source_mailhost: string
  source_backend: string | null
  target_backend: string
  state: MoveState
  detail: string | null
  actor: string
  created_at: Date | string
  updated_at: Date | string
  finished_at: Date | string | null
}

// `id` is the text alias in results: queries order by `moves.id`, the bigint (as text, 10 sorts before 9).
const COLUMNS = 'id::text as id, account, account_id, source_mailhost, source_backend, target_backend, state, detail, actor, created_at, updated_at, finished_at'
const iso = (v: Date | string) => new Date(v).toISOString()

const view = (r: Row): MoveView => ({
  id: Number(r.id),
  account: r.account,
  source: { backend: r.source_backend, mailHost: r.source_mailhost },
  target: r.target_backend,
  state: r.state,
  detail: r.detail,
  actor: r.actor,
  createdAt: iso(r.created_at),
  updatedAt: iso(r.updated_at),
  finishedAt: r.finished_at === null ? null : iso(r.finished_at),
})

/** Primary addresses of every account with an unfinished move. */
export async function movingAccounts(db: Queryable): Promise<string[]> {
  const { rows } = await db.query<{ account: string }>(`select account from moves where state = any($1)`, [UNFINISHED])
  return rows.map((r) => r.account)
}

export class Moves {
  readonly #hooks: HookRunner | undefined
  readonly #settleMs: number
  /** Hooks waiting out the settle time, by move id. */
  readonly #settling = new Map<number, NodeJS.Timeout>()
  #closed = false

  constructor(private readonly d: AdminDeps) {
    const m = d.config.admin.moves
    this.#settleMs = toMs(m.settle)
    this.#hooks =
      m.hook.length === 0
        ? undefined
        : new HookRunner(
            { argv: m.hook, timeout: m.hookTimeout, concurrency: m.concurrency, environment: m.hookEnvironment, logger: d.logger },
            (id) => this.#claim(id),
            (id, outcome) => this.#copyEnded(id, outcome),
          )
  }

  async list(q: MoveListRequest): Promise<{ moves: MoveView[]; next?: number }> {
    const where: string[] = []
    const params: unknown[] = []
    const add = (sql: string, v: unknown) => {
      params.push(v)
      where.push(sql.replace('?', `$${params.length}`))
    }
    if (q.state !== undefined) add('state = ?', q.state)
    if (q.active) add('state = any(?)', UNFINISHED)
    if (q.account !== undefined) {
      const c = canonicalAddress(q.account, this.d.config.addresses)
      add('account = ?', c.ok ? c.address : q.account)
    }
    if (q.after !== undefined) add('id > ?', q.after)
    params.push(q.limit + 1)
    const { rows } = await this.d.store.query<Row>(
      `select ${COLUMNS} from moves ${where.length ? `where ${where.join(' and ')}` : ''} order by moves.id limit $${params.length}`,
      params,
    )
    const moves = rows.slice(0, q.limit).map(view)
    return rows.length > q.limit ? { moves, next: moves.at(-1)!.id } : { moves }
  }

  async get(id: number): Promise<MoveView> {
    return view(await this.#row(this.d.store, id))
  }

  async start(actor: string, req: StartRequest): Promise<MoveView[]> {
    const { counts } = writable(this.d)
    const registry = this.d.registry()
    const target = registry.backend(req.target)
    if (!target) throw new AdminError(ErrorCodes.NOT_FOUND, `no backend ${req.target}`)
    if ((target.adminState ?? 'active') !== 'active') {
      throw new AdminError(ErrorCodes.NO_ELIGIBLE_BACKEND, `target ${target.id} is in ${target.adminState}: it takes no accounts`)
    }
    const accounts = await this.#accountsToMove(req)
    if (accounts.length === 0) throw new AdminError(ErrorCodes.VALIDATION, 'no accounts to move')
    const moving = accounts.find((a) => registry.isMoving(a.address))
    if (moving) throw new AdminError(ErrorCodes.ACCOUNT_MOVING, `${moving.address} is being moved already; nothing was started`)
    for (const a of accounts) {
      if (registry.backendForMailHost(a.mailHost)?.id === target.id) {
        throw new AdminError(ErrorCodes.CONFLICT, `${a.address} is on ${target.id} already`)
      }
    }
    if (target.capacity !== undefined && target.capacity !== null) {
      const on = (await counts.byBackend(registry)).get(target.id) ?? 0
      if (on + accounts.length > target.capacity) {
        throw new AdminError(ErrorCodes.NO_ELIGIBLE_BACKEND, `target ${target.id} holds ${on} of ${target.capacity} accounts: no room for ${accounts.length} more`)
      }
    }
    const initial: MoveState = this.#hooks ? 'pending' : 'copied'
    const rows = await this.d.store.transaction(async (tx) => {
      const out: Row[] = []
      for (const a of accounts) {
        let row: Row
        try {
          ;[row] = (
            await tx.query<Row>(
              `insert into moves (account, account_id, source_mailhost, source_backend, target_backend, state, actor)
               values ($1, $2, $3, $4, $5, $6, $7) returning ${COLUMNS}`,
              [a.address, a.id, a.mailHost, registry.backendForMailHost(a.mailHost)?.id ?? null, target.id, initial, actor],
            )
          ).rows as [Row]
        } catch (e) {
          if (sqlState(e) === '23505') throw new AdminError(ErrorCodes.ACCOUNT_MOVING, `${a.address} is being moved already; nothing was started`)
          throw e
        }
        await recordAudit(tx, { actor, action: 'start', subjectType: 'move', subject: row.id, after: view(row) })
        out.push(row)
      }
      await this.d.bus.publish({ kind: 'moves' }, tx)
      return out
    })
    await applied(this.d, { kind: 'moves' })
    if (this.#hooks) for (const r of rows) this.#schedule(r, this.#settleMs)
    else if (this.d.config.admin.moves.autoComplete) for (const r of rows) await this.#autoComplete(Number(r.id))
    return rows.map(view)
  }

  async complete(actor: string, id: number, force = false): Promise<MoveView> {
    const { writer, counts } = writable(this.d)
    const move = await this.#row(this.d.store, id)
    const allowed: MoveState[] = force ? ['copied', 'failed', 'pending'] : ['copied']
    if (!allowed.includes(move.state)) {
      throw new AdminError(
        ErrorCodes.MOVE_STATE,
        move.state === 'copying'
          ? `move ${id} is copying: wait for the hook, or abort`
          : `move ${id} is ${move.state}${force || UNFINISHED.indexOf(move.state) < 0 ? '' : '; complete with force=true if the mailbox was copied by other means'}`,
      )
    }
    if (!force) {
      const left = await this.#settlesIn(id)
      if (left > 0) {
        throw new AdminError(
          ErrorCodes.MOVE_STATE,
          `move ${id} is settling for ${Math.ceil(left / 1000)} s more: Postfix may still deliver with a route it resolved before the move (admin.moves.settle); complete after that, or with force=true`,
        )
      }
    }
    const target = this.d.registry().backend(move.target_backend)
    if (!target) throw new AdminError(ErrorCodes.MOVE_STATE, `target backend ${move.target_backend} is gone; abort the move`)
    const mailHost = mailHostOf(target)
    // The directory first: until the move row is finished the account stays moving, so no
    // answer routes by a half-done flip.
    await writer.update(move.account, { mailHost })
    counts.adjust(move.source_mailhost, -1)
    counts.adjust(mailHost, +1)
    // The cached answers naming the source go with the commit, before the moving state does.
    const entries = { kind: 'entries' as const, addresses: [move.account], ids: [move.account_id] }
    const row = await this.#transition(actor, id, allowed, 'completed', 'complete', null, { mailHost: move.source_mailhost }, { mailHost }, entries)
    return view(row)
  }

  async abort(actor: string, id: number): Promise<MoveView> {
    const row = await this.#transition(actor, id, UNFINISHED, 'aborted', 'abort', null)
    clearTimeout(this.#settling.get(id))
    this.#settling.delete(id)
    this.#hooks?.cancel(id)
    return view(row)
  }

  /**
   * Schedules the hook of every pending move (after a restart, or moves another instance started
   * and could not run). Claims are atomic, so with several instances each move runs once.
   */
  async resume(): Promise<void> {
    if (!this.#hooks) return
    const { rows } = await this.d.store.query<Row>(`select ${COLUMNS} from moves where state = 'pending' order by moves.id`)
    for (const r of rows) this.#schedule(r, await this.#settlesIn(Number(r.id)))
    if (rows.length > 0) this.d.logger.info({ moves: rows.length }, 'moves: pending copy hooks scheduled')
  }

  /** Stops hooks this instance runs; their moves are marked failed (abort or complete by hand). */
  async close(): Promise<void> {
    this.#closed = true
    for (const timer of this.#settling.values()) clearTimeout(timer)
    this.#settling.clear()
    await this.#hooks?.close()
  }

  /**
   * Runs the move's hook once the settle time is over: a Postfix queue manager reuses a route it
   * resolved up to 30 s before, and each smtpd keeps its resolutions until it exits, so mail
   * may still reach the source for a while after the move starts. The copy must include it.
   */
  #schedule(r: Row, delayMs: number): void {
    const id = Number(r.id)
    if (this.#closed || this.#settling.has(id)) return
    const timer = setTimeout(() => {
      this.#settling.delete(id)
      this.#hooks?.enqueue(id, this.#hookEnv(r))
    }, delayMs)
    timer.unref()
    this.#settling.set(id, timer)
  }

  /** Milliseconds until the move's settle time is over, by the store's clock (shared by every instance). */
  async #settlesIn(id: number): Promise<number> {
    const { rows } = await this.d.store.query<{ ms: number }>(
      `select greatest(0, extract(epoch from (created_at - now())) * 1000 + $2)::float8 as ms from moves where id = $1`,
      [id, this.#settleMs],
    )
    return Math.ceil(rows[0]?.ms ?? 0)
  }

  async #accountsToMove(req: StartRequest): Promise<AccountRecord[]> {
    const { writer } = writable(this.d)
    if ((req.accounts === undefined) === (req.fromBackend === undefined)) {
      throw new AdminError(ErrorCodes.VALIDATION, 'give either accounts or fromBackend')
    }
    if (req.accounts !== undefined) {
      if (req.accounts.length > MAX_BATCH) throw new AdminError(ErrorCodes.VALIDATION, `at most ${MAX_BATCH} accounts per request`)
      const out: AccountRecord[] = []
      for (const raw of new Set(req.accounts)) {
        const c = canonicalAddress(raw, this.d.config.addresses)
        const r = c.ok ? await writer.get(c.address) : undefined
        if (!r) throw new AdminError(ErrorCodes.NOT_FOUND, `no account ${raw}`)
        out.push(r)
      }
      return out
    }
    const from = this.d.registry().backend(req.fromBackend!)
    if (!from) throw new AdminError(ErrorCodes.NOT_FOUND, `no backend ${req.fromBackend}`)
    const limit = Math.min(req.limit ?? MAX_BATCH, MAX_BATCH)
    const mailHosts = [from.id, ...from.mailHosts].map((h) => h.toLowerCase())
    const moving = this.d.registry()
    const out: AccountRecord[] = []
    let after: string | undefined
    do {
      const page = await writer.list({ mailHosts, limit: 1000, ...(after === undefined ? {} : { after }) })
      // Accounts already moving are skipped here, so a drain can be resumed with the same request.
      for (const a of page.accounts) if (out.length < limit && !moving.isMoving(a.address)) out.push(a)
      after = page.next
    } while (after !== undefined && out.length < limit)
    return out
  }

  async #transition(
    actor: string,
    id: number,
    from: readonly MoveState[],
    to: MoveState,
    action: AuditAction,
    detail: string | null,
    before?: object,
    after?: object,
    evict?: Change,
  ): Promise<Row> {
    const finishing = to === 'completed' || to === 'aborted'
    const row = await this.d.store.transaction(async (tx) => {
      const current = await this.#row(tx, id, true)
      if (!from.includes(current.state)) throw new AdminError(ErrorCodes.MOVE_STATE, `move ${id} is ${current.state}`)
      const [updated] = (
        await tx.query<Row>(
          `update moves set state = $2, detail = $3, updated_at = now(), finished_at = case when $4 then now() else finished_at end
            where id = $1 returning ${COLUMNS}`,
          [id, to, detail, finishing],
        )
      ).rows as [Row]
      await recordAudit(tx, {
        actor,
        action,
        subjectType: 'move',
        subject: String(id),
        before: { state: current.state, ...before },
        after: { state: to, ...(detail === null ? {} : { detail }), ...after },
      })
      // `evict` first, here and below: once the moving state is cleared, a cached answer
      // naming the source backend would route the mail that waited out the move back to it.
      // Notifications of one transaction arrive in the order they were sent.
      if (finishing && evict) await this.d.bus.publish(evict, tx)
      if (finishing) await this.d.bus.publish({ kind: 'moves' }, tx)
      return updated
    })
    if (finishing && evict) await applied(this.d, evict)
    if (finishing) await applied(this.d, { kind: 'moves' })
    return row
  }

  async #row(db: Queryable, id: number, lock = false): Promise<Row> {
    const { rows } = await db.query<Row>(`select ${COLUMNS} from moves where id = $1${lock ? ' for update' : ''}`, [id])
    if (!rows[0]) throw new AdminError(ErrorCodes.NOT_FOUND, `no move ${id}`)
    return rows[0]
  }

  #hookEnv(r: Row): Record<string, string> {
    const reg = this.d.registry()
    const source = r.source_backend === null ? undefined : reg.backend(r.source_backend)
    const target = reg.backend(r.target_backend)
    return {
      MAILHOSTD_MOVE_ID: r.id,
      MAILHOSTD_ACCOUNT: r.account,
      MAILHOSTD_SOURCE_BACKEND: r.source_backend ?? '',
      MAILHOSTD_SOURCE_ADDRESS: source?.address ?? '',
      MAILHOSTD_TARGET_BACKEND: r.target_backend,
      MAILHOSTD_TARGET_ADDRESS: target?.address ?? '',
    }
  }

  /** The hook runner claims a move (pending -> copying) before it spawns anything; not audited, the outcome is. */
  async #claim(id: number): Promise<boolean> {
    if (this.#closed) return false
    const { rows } = await this.d.store.query(`update moves set state = 'copying', updated_at = now() where id = $1 and state = 'pending' returning id`, [id])
    return rows.length === 1
  }

  async #copyEnded(id: number, outcome: { ok: true } | { ok: false; detail: string }): Promise<void> {
    try {
      if (outcome.ok) {
        await this.#transition(SYSTEM_ACTOR, id, ['copying'], 'copied', 'copied', null)
        if (this.d.config.admin.moves.autoComplete) await this.#autoComplete(id)
      } else {
        await this.#transition(SYSTEM_ACTOR, id, ['copying'], 'failed', 'failed', outcome.detail)
      }
    } catch (e) {
      // Aborted while the hook ran: the abort stands.
      if (!(e instanceof AdminError)) this.d.logger.error({ move: id, err: String(e) }, 'recording the end of a move copy failed')
    }
  }

  async #autoComplete(id: number): Promise<void> {
    try {
      await this.complete(SYSTEM_ACTOR, id)
    } catch (e) {
      this.d.logger.error({ move: id, err: String(e) }, 'automatic completion of a move failed; complete it by hand')
    }
  }
}
