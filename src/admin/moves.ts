// Mailbox moves (docs/admin.md): start marks accounts moving (Postfix transport defers their
// mail, logins fail temporarily), an optional hook copies each mailbox, complete flips the
// mailHost to the target and clears the moving state, abort clears it and leaves the account
// where it was. The moving state lives in the store (moves rows in an unfinished state), so
// every instance sees it; the database's unique index allows one unfinished move per account.

import { setTimeout as sleep } from 'node:timers/promises'
import { toMs } from '../config/duration.js'
import { aliveSql } from '../cluster/presence.js'
import { AdminError, ErrorCodes, describeError } from '../errors.js'
import type { AccountRecord } from '../directory/accounts.js'
import type { Queryable } from '../store/store.js'
import { mailHostOf } from './accounts.js'
import { recordAudit, type AuditAction } from './audit.js'
import { applied, intentsOf, sqlState, writable, rowOf, type AdminDeps, type ObjectTable } from './context.js'
import type { PendingAnswer } from './idempotency.js'
import type { Intent, Intents } from './intents.js'
import { HookRunner } from './move-hook.js'
import { UNFINISHED, type MoveState } from './move-states.js'
import type { MoveListRequest, MoveView, StartRequest } from './shapes.js'
import { canonicalAddress } from '../resolve/address.js'
import { Filter } from '../store/filter.js'
import { chooseMember } from '../pools/rendezvous.js'
import type { BackendInfo } from '../resolve/registry.js'

/** Who the audit log names for transitions the hook makes. */
const SYSTEM_ACTOR = 'mailhostd'
/** Most accounts one request may move. */
export const MAX_BATCH = 10_000

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
  runner: string | null
}

/** What a completion intent records: the account and the mailHost the flip writes. */
interface CompletionIntent {
  account: string
  mailHost: string
  from: MoveState
}

/** The cached answers a completed move makes wrong: its account's. */
const entriesOf = (r: Row) => ({ kind: 'entries' as const, addresses: [r.account], ids: [r.account_id] })

function refuseUnless(move: Row, allowed: readonly MoveState[], force: boolean): void {
  if (allowed.includes(move.state)) return
  throw new AdminError(
    ErrorCodes.MOVE_STATE,
    move.state === 'copying'
      ? `move ${move.id} is copying: wait for the hook, or abort`
      : `move ${move.id} is ${move.state}${force || UNFINISHED.indexOf(move.state) < 0 ? '' : '; complete with force=true if the mailbox was copied by other means'}`,
  )
}

// `id` is the text alias in results: queries order by `moves.id`, the bigint (as text, 10 sorts before 9).
const COLUMNS = 'id::text as id, account, account_id, source_mailhost, source_backend, target_backend, state, detail, actor, created_at, updated_at, finished_at, runner'
const TABLE: ObjectTable = { table: 'moves', columns: COLUMNS, key: 'id', what: 'move' }
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
  readonly #intents: Intents
  /** Completion intents this instance is carrying out now. */
  readonly #busy = new Set<number>()
  #closed = false

  constructor(private readonly d: AdminDeps) {
    this.#intents = intentsOf(d)
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
    const f = new Filter()
    if (q.state !== undefined) f.add('state = ?', q.state)
    if (q.active) f.add('state = any(?)', UNFINISHED)
    if (q.account !== undefined) {
      const c = canonicalAddress(q.account, this.d.config.addresses)
      f.add('account = ?', c.ok ? c.address : q.account)
    }
    if (q.after !== undefined) f.add('id > ?', q.after)
    const limit = f.limitPage(q.limit)
    const { rows } = await this.d.store.query<Row>(`select ${COLUMNS} from moves ${f.where} order by moves.id ${limit}`, f.params)
    const moves = rows.slice(0, q.limit).map(view)
    return rows.length > q.limit ? { moves, next: moves.at(-1)!.id } : { moves }
  }

  async get(id: number): Promise<MoveView> {
    return view(await this.#row(this.d.store, id))
  }

  async start(actor: string, req: StartRequest, answer?: PendingAnswer): Promise<MoveView[]> {
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
      if (answer) await answer.seal(tx, { moves: out.map(view) })
      return out
    })
    await applied(this.d, { kind: 'moves' })
    if (this.#hooks) for (const r of rows) this.#schedule(r, this.#settleMs)
    else if (this.d.config.admin.moves.autoComplete) for (const r of rows) await this.#autoComplete(Number(r.id))
    return rows.map(view)
  }

  async complete(actor: string, id: number, force = false): Promise<MoveView> {
    const { writer, counts } = writable(this.d)
    const allowed: MoveState[] = force ? ['copied', 'failed', 'pending'] : ['copied']
    await this.#settleOrphanedCompletion(id)
    const move = await this.#row(this.d.store, id)
    refuseUnless(move, allowed, force)
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
    const completion = (tx: Queryable, current: Row) =>
      this.#transitionIn(tx, actor, current, 'completed', 'complete', null, { mailHost: current.source_mailhost }, { mailHost })
    let row: Row
    if (writer.inStore) {
      // The directory is the store: the flip, the move's end, its audit entry and the cache
      // evictions are one transaction, so no crash can leave one without the others.
      row = await this.d.store.transaction(async (tx) => {
        const current = await this.#row(tx, id, true)
        refuseUnless(current, allowed, force)
        await writer.update(current.account, { mailHost }, tx)
        return completion(tx, current)
      })
    } else {
      // LDAP: announce the flip (under the move's row lock, so an abort cannot slip in), flip,
      // then end the move with the intent. Until the intent is settled the move stays
      // unfinished (mail waits), and abort refuses it.
      const intent = await this.d.store.transaction(async (tx) => {
        const current = await this.#row(tx, id, true)
        refuseUnless(current, allowed, force)
        if (await this.#intents.openFor('move-complete', String(id), tx)) throw new AdminError(ErrorCodes.MOVE_STATE, `move ${id} is being completed`)
        return this.#intents.open('move-complete', String(id), actor, { account: current.account, mailHost, from: current.state } satisfies CompletionIntent, undefined, tx)
      })
      this.#busy.add(intent.id)
      try {
        try {
          await writer.update(move.account, { mailHost })
        } catch (e) {
          // As for account writes: a refusal changed nothing; an unknown outcome is read back by
          // recovery once the write can no longer land, and until then abort refuses the move.
          if (e instanceof AdminError) await this.d.store.transaction((tx) => this.#intents.settle(tx, intent.id, 'undone'))
          else this.d.logger.warn({ move: id, err: describeError(e) }, 'move completion failed with its outcome unknown; it is read back from the directory in a few seconds')
          throw e
        }
        row = await this.d.store.transaction(async (tx) => {
          const current = await this.#row(tx, id, true)
          // Resolved meanwhile as orphaned: 'done' completed the move there; 'undone' read the
          // directory before this flip landed, and the move is completed here after all.
          if (!(await this.#intents.settle(tx, intent.id, 'done')) && !(await this.#intents.settle(tx, intent.id, 'done', 'undone'))) return current
          if (!UNFINISHED.includes(current.state)) {
            // Taken for dead, found unflipped, and aborted meanwhile: the flip landed anyway.
            this.d.logger.error({ move: id, account: current.account, mailHost }, 'move was aborted while its completion ran; the account now names the target: move it back or complete by hand')
            return current
          }
          return completion(tx, current)
        })
      } finally {
        this.#busy.delete(intent.id)
      }
    }
    counts.adjust(move.source_mailhost, -1)
    counts.adjust(mailHost, +1)
    await this.#finished(move)
    return view(row)
  }

  async abort(actor: string, id: number): Promise<MoveView> {
    await this.#settleOrphanedCompletion(id)
    const row = await this.d.store.transaction(async (tx) => {
      const current = await this.#row(tx, id, true)
      if (!UNFINISHED.includes(current.state)) throw new AdminError(ErrorCodes.MOVE_STATE, `move ${id} is ${current.state}`)
      // The directory may already name the target: aborting now would leave it there, unaudited.
      if (await this.#intents.openFor('move-complete', String(id), tx)) throw new AdminError(ErrorCodes.MOVE_STATE, `move ${id} is being completed`)
      return this.#transitionIn(tx, actor, current, 'aborted', 'abort', null)
    })
    await this.#finished(row)
    clearTimeout(this.#settling.get(id))
    this.#settling.delete(id)
    this.#hooks?.cancel(id)
    return view(row)
  }

  /** Open completion intents this instance is working on right now: recovery leaves them alone. */
  get busy(): ReadonlySet<number> {
    return this.#busy
  }

  /**
   * Settles a completion nobody is finishing (its request died between announcing the flip and
   * recording it): reads the account's mailHost; if the flip landed the move is completed, with
   * its audit entry and the evictions, otherwise the intent is undone and the move stays as it
   * was (complete or abort it again).
   */
  async resolve(intent: Intent): Promise<void> {
    const { writer } = writable(this.d)
    const p = intent.payload as CompletionIntent
    const account = await writer.get(p.account)
    const landed = account !== undefined && account.mailHost.toLowerCase() === p.mailHost.toLowerCase()
    const id = Number(intent.subject)
    const row = await this.d.store.transaction(async (tx) => {
      if (!(await this.#intents.lock(tx, intent.id))) return undefined
      await this.#intents.settle(tx, intent.id, landed ? 'done' : 'undone')
      if (!landed) return undefined
      const current = await this.#row(tx, id, true)
      if (!UNFINISHED.includes(current.state)) return undefined
      return this.#transitionIn(tx, intent.actor, current, 'completed', 'complete', null, { mailHost: current.source_mailhost }, { mailHost: p.mailHost })
    })
    this.d.logger.warn({ intent: intent.id, move: id, outcome: landed ? 'completed' : 'not flipped' }, 'move completion of a stopped request resolved')
    if (row) {
      this.d.counts?.reset()
      await this.#finished(row)
    }
  }

  /**
   * Copy hooks whose instance is gone: their moves are marked failed, as a clean stop marks
   * them, so complete (force) and abort work at once. They are not re-run: the killed hook may
   * still be running on its own, and a second copy beside it could corrupt the mailbox.
   */
  async recoverHooks(): Promise<number> {
    const { rows } = await this.d.store.query<Row>(
      `select ${COLUMNS} from moves where state = 'copying' and (runner is null or not ${aliveSql('runner', '$1')}) order by moves.id`,
      [this.d.instance.leaseMs],
    )
    let n = 0
    for (const r of rows) {
      const detail = `mailhostd stopped while the hook ran (instance ${r.runner ?? 'unknown'}); complete with force=true if the copy finished, or abort`
      const done = await this.d.store
        .transaction(async (tx) => {
          const current = await this.#row(tx, Number(r.id), true)
          if (current.state !== 'copying' || current.runner !== r.runner) return false
          await this.#transitionIn(tx, SYSTEM_ACTOR, current, 'failed', 'failed', detail)
          return true
        })
      if (done) n++
    }
    if (n > 0) this.d.logger.warn({ moves: n }, 'moves: copy hooks of a stopped instance recorded as failed')
    return n
  }

  /** A completion intent whose owner is gone is settled before anyone acts on its move. */
  async #settleOrphanedCompletion(id: number): Promise<void> {
    const open = await this.#intents.openFor('move-complete', String(id))
    if (!open || (open.alive && (open.owner !== this.d.instance.id || this.#busy.has(open.id)))) return
    // Its flip may still be on its way to the directory: wait out the grace (bounded by the write timeout).
    const wait = this.#intents.graceMs - open.ageMs
    if (wait > 0) await sleep(wait)
    await this.resolve(open)
  }

  /** After a move finished (completed or aborted): this instance forgets it at once. */
  async #finished(r: Row): Promise<void> {
    if (r.state === 'completed') await applied(this.d, entriesOf(r))
    if (r.state === 'completed' || r.state === 'aborted') await applied(this.d, { kind: 'moves' })
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

  async #transition(actor: string, id: number, from: readonly MoveState[], to: MoveState, action: AuditAction, detail: string | null): Promise<Row> {
    const row = await this.d.store.transaction(async (tx) => {
      const current = await this.#row(tx, id, true)
      if (!from.includes(current.state)) throw new AdminError(ErrorCodes.MOVE_STATE, `move ${id} is ${current.state}`)
      return this.#transitionIn(tx, actor, current, to, action, detail)
    })
    await this.#finished(row)
    return row
  }

  /** Moves a locked move row to `to` with its audit entry and notifications, inside `tx`. */
  async #transitionIn(tx: Queryable, actor: string, current: Row, to: MoveState, action: AuditAction, detail: string | null, before?: object, after?: object): Promise<Row> {
    const finishing = to === 'completed' || to === 'aborted'
    const [updated] = (
      await tx.query<Row>(
        `update moves set state = $2, detail = $3, updated_at = now(), runner = null, finished_at = case when $4 then now() else finished_at end
          where id = $1 returning ${COLUMNS}`,
        [current.id, to, detail, finishing],
      )
    ).rows as [Row]
    await recordAudit(tx, {
      actor,
      action,
      subjectType: 'move',
      subject: String(current.id),
      before: { state: current.state, ...before },
      after: { state: to, ...(detail === null ? {} : { detail }), ...after },
    })
    // Evictions first: once the moving state is cleared, a cached answer naming the source
    // backend would route the mail that waited out the move back to it. Notifications of one
    // transaction arrive in the order they were sent.
    if (to === 'completed') await this.d.bus.publish(entriesOf(current), tx)
    if (finishing) await this.d.bus.publish({ kind: 'moves' }, tx)
    return updated
  }

  #row(db: Queryable, id: number, lock = false): Promise<Row> {
    return rowOf<Row>(db, TABLE, id, lock)
  }

  #hookEnv(r: Row): Record<string, string> {
    const reg = this.d.registry()
    const source = r.source_backend === null ? undefined : reg.backend(r.source_backend)
    const target = reg.backend(r.target_backend)
    // A pool has no address: the member the account would be pinned to first (storage is shared).
    const addressOf = (b: BackendInfo | undefined) => (b?.kind === 'pool' ? (chooseMember(r.account, reg.eligibleMembers(b))?.address ?? '') : (b?.address ?? ''))
    return {
      MAILHOSTD_MOVE_ID: r.id,
      MAILHOSTD_ACCOUNT: r.account,
      MAILHOSTD_SOURCE_BACKEND: r.source_backend ?? '',
      MAILHOSTD_SOURCE_ADDRESS: addressOf(source),
      MAILHOSTD_TARGET_BACKEND: r.target_backend,
      MAILHOSTD_TARGET_ADDRESS: addressOf(target),
    }
  }

  /** The hook runner claims a move (pending -> copying) before it spawns anything; not audited, the outcome is. */
  async #claim(id: number): Promise<boolean> {
    if (this.#closed) return false
    const { rows } = await this.d.store.query(`update moves set state = 'copying', runner = $2, updated_at = now() where id = $1 and state = 'pending' returning id`, [
      id,
      this.d.instance.id,
    ])
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
