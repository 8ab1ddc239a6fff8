// Backends through the admin API: the registry rows in the store, with live account counts and
// the health states the checks recorded. A pool (docs/pools.md) is a backend too: created with
// its members, shown with them, deleted with them and its pins; /v1/pools operates on its members.
// Every write is audited in its own transaction and announced as a registry change, so every
// instance reloads its registry. A backend that still holds accounts, or that a move is about
// to fill, cannot be removed.

import { toMs } from '../config/duration.js'
import { MIN_PIN_FOR_MS } from '../config/load.js'
import { DEFAULT_PIN_FOR } from '../config/schema.js'
import { AdminError, ErrorCodes } from '../errors.js'
import { forgetHealth, healthRecords } from '../health/health-repo.js'
import { dropPins } from '../pools/pins-repo.js'
import type { AdminState } from '../resolve/registry.js'
import { BACKEND_COLUMNS, type BackendRow } from '../store/registry-repo.js'
import type { Queryable } from '../store/store.js'
import { recordAudit } from './audit.js'
import { applied, sqlState, rowOf, type AdminDeps, type ObjectTable } from './context.js'
import type { PendingAnswer } from './idempotency.js'
import { UNFINISHED } from './move-states.js'
import { checkAddress, claimServerIds, insertMember, memberView, membersOf, recordedMember, type StoredMember } from './pool-members.js'
import type { BackendChanges, BackendHealth, BackendView, NewBackend } from './shapes.js'

export interface Row extends BackendRow {
  weight: number
  capacity: number | null
  admin_state: AdminState
}

const COLUMNS = `${BACKEND_COLUMNS}, weight, capacity, admin_state`
export const BACKENDS_TABLE: ObjectTable = { table: 'backends', columns: COLUMNS, key: 'id', what: 'backend' }

export const portsOf = (r: Row) => ({ lmtp: r.lmtp_port, smtp: r.smtp_port, imap: r.imap_port, pop3: r.pop3_port })

/** A backend as the API shows it; a pool with its members (`members`: at least this pool's). */
function view(r: Row, accounts: number | null, health: ReadonlyMap<string, BackendHealth> = new Map(), members: readonly StoredMember[] = []): BackendView {
  const common = {
    id: r.id,
    kind: r.kind,
    mailHosts: r.mailhosts,
    route: r.route,
    ports: portsOf(r),
    weight: r.weight,
    capacity: r.capacity,
    adminState: r.admin_state,
    accounts,
    health: health.get(r.id) ?? {},
  }
  if (r.kind === 'host') return { ...common, address: r.address ?? '' }
  return {
    ...common,
    members: members.filter((m) => m.pool_id === r.id).map((m) => memberView(m, common.ports, health.get(m.id))),
    pinForMs: r.pin_for_ms ?? toMs(DEFAULT_PIN_FOR),
    ...(r.director_tag !== null && r.director_address !== null ? { director: { tag: r.director_tag, address: r.director_address } } : {}),
  }
}

/** What the audit log records: the stored fields, without the count and the health. */
const recorded = (r: Row, members: readonly StoredMember[] = []) => {
  const { accounts: _accounts, health: _health, members: _members, ...rest } = view(r, null)
  return r.kind === 'pool' ? { ...rest, members: members.filter((m) => m.pool_id === r.id).map(recordedMember) } : rest
}

/** The recorded health states by backend or member id. */
export async function healthByServer(db: Queryable): Promise<Map<string, BackendHealth>> {
  const out = new Map<string, BackendHealth>()
  for (const { backend, service, ...state } of await healthRecords(db)) out.set(backend, { ...out.get(backend), [service]: state })
  return out
}

/** A pinFor duration as the API takes it, checked against the floor the config holds to. */
function pinForMs(pinFor: string): number {
  const ms = toMs(pinFor)
  if (ms < MIN_PIN_FOR_MS) throw new AdminError(ErrorCodes.VALIDATION, `pinFor must be at least 5s: pins are refreshed in the store every second (got ${pinFor.trim()})`)
  if (ms > 2_147_483_647) throw new AdminError(ErrorCodes.VALIDATION, `pinFor is too long: ${pinFor.trim()}`)
  return ms
}

/** What kind-specific fields a create or update may carry, checked before any store work. */
function checkKind(kind: 'host' | 'pool', b: { address?: string | undefined; members?: unknown; pinFor?: string | undefined; director?: { address: string } | null | undefined }, creating: boolean): void {
  if (kind === 'host') {
    for (const key of ['members', 'pinFor', 'director'] as const) {
      if (b[key] !== undefined) throw new AdminError(ErrorCodes.VALIDATION, `${key}: a pool's only (this backend is a host)`)
    }
    if (creating && b.address === undefined) throw new AdminError(ErrorCodes.VALIDATION, 'address: a host needs one')
    if (b.address !== undefined) checkAddress(b.address)
    return
  }
  if (b.address !== undefined) throw new AdminError(ErrorCodes.VALIDATION, 'address: a pool has none (its members have theirs)')
  if (creating && b.members === undefined) throw new AdminError(ErrorCodes.VALIDATION, 'members: a pool needs at least one')
  if (b.director) checkAddress(b.director.address, 'director.address')
  if (b.pinFor !== undefined) pinForMs(b.pinFor)
}

export class Backends {
  constructor(private readonly d: AdminDeps) {}

  async list(): Promise<BackendView[]> {
    const { rows } = await this.d.store.query<Row>(`select ${COLUMNS} from backends order by id`)
    const counts = await this.#counts()
    const health = await healthByServer(this.d.store)
    const members = rows.some((r) => r.kind === 'pool') ? await membersOf(this.d.store) : []
    return rows.map((r) => view(r, counts?.get(r.id) ?? (counts ? 0 : null), health, members))
  }

  async get(id: string): Promise<BackendView> {
    const row = await this.#row(this.d.store, id)
    return this.#view(row)
  }

  async #view(row: Row, db: Queryable = this.d.store): Promise<BackendView> {
    const counts = await this.#counts()
    const members = row.kind === 'pool' ? await membersOf(db, [row.id]) : []
    return view(row, counts?.get(row.id) ?? (counts ? 0 : null), await healthByServer(db), members)
  }

  async create(actor: string, b: NewBackend, answer?: PendingAnswer): Promise<BackendView> {
    const kind = b.kind ?? 'host'
    checkKind(kind, b, true)
    b.members?.forEach((m, i) => checkAddress(m.address, `members[${i}].address`))
    const mailHosts = normaliseHosts(b.mailHosts ?? [])
    const row = await this.d.store.transaction(async (tx) => {
      await claimServerIds(tx, [b.id, ...(b.members ?? []).map((m) => m.id)])
      await this.#checkNames(tx, b.id, mailHosts)
      const p = { lmtp: 24, smtp: 25, imap: 143, pop3: 110, ...b.ports }
      let inserted: Row
      try {
        ;[inserted] = (
          await tx.query<Row>(
            `insert into backends (id, kind, mailhosts, address, route, lmtp_port, smtp_port, imap_port, pop3_port, weight, capacity, admin_state, pin_for_ms, director_tag, director_address)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) returning ${COLUMNS}`,
            [
              b.id,
              kind,
              mailHosts,
              b.address ?? null,
              b.route ?? 'lmtp',
              p.lmtp,
              p.smtp,
              p.imap,
              p.pop3,
              b.weight ?? 1,
              b.capacity ?? null,
              b.adminState ?? 'active',
              kind === 'pool' ? pinForMs(b.pinFor ?? DEFAULT_PIN_FOR) : null,
              b.director?.tag ?? null,
              b.director?.address ?? null,
            ],
          )
        ).rows as [Row]
      } catch (e) {
        if (sqlState(e) === '23505') throw new AdminError(ErrorCodes.CONFLICT, `backend ${b.id} exists already`)
        throw e
      }
      const members: StoredMember[] = []
      for (const m of b.members ?? []) members.push(await insertMember(tx, b.id, m))
      await recordAudit(tx, { actor, action: 'create', subjectType: 'backend', subject: b.id, after: recorded(inserted, members) })
      await this.d.bus.publish({ kind: 'registry' }, tx)
      const created = view(inserted, 0, await healthByServer(tx), members)
      if (answer) await answer.seal(tx, created)
      return created
    })
    await applied(this.d, { kind: 'registry' })
    return row
  }

  async update(actor: string, id: string, c: BackendChanges): Promise<BackendView> {
    const row = await this.d.store.transaction(async (tx) => {
      const before = await this.#row(tx, id, true)
      checkKind(before.kind, c, false)
      const mailHosts = c.mailHosts === undefined ? before.mailhosts : normaliseHosts(c.mailHosts)
      if (c.mailHosts !== undefined) await this.#checkNames(tx, id, mailHosts)
      const p = { lmtp: before.lmtp_port, smtp: before.smtp_port, imap: before.imap_port, pop3: before.pop3_port, ...c.ports }
      const [after] = (
        await tx.query<Row>(
          `update backends set mailhosts = $2, address = $3, route = $4, lmtp_port = $5, smtp_port = $6, imap_port = $7,
                  pop3_port = $8, weight = $9, capacity = $10, admin_state = $11, pin_for_ms = $12, director_tag = $13,
                  director_address = $14, updated_at = now()
            where id = $1 returning ${COLUMNS}`,
          [
            id,
            mailHosts,
            c.address ?? before.address,
            c.route ?? before.route,
            p.lmtp,
            p.smtp,
            p.imap,
            p.pop3,
            c.weight ?? before.weight,
            c.capacity === undefined ? before.capacity : c.capacity,
            c.adminState ?? before.admin_state,
            c.pinFor === undefined ? before.pin_for_ms : pinForMs(c.pinFor),
            c.director === undefined ? before.director_tag : (c.director?.tag ?? null),
            c.director === undefined ? before.director_address : (c.director?.address ?? null),
          ],
        )
      ).rows as [Row]
      const members = before.kind === 'pool' ? await membersOf(tx, [id]) : []
      await recordAudit(tx, { actor, action: 'update', subjectType: 'backend', subject: id, before: recorded(before, members), after: recorded(after, members) })
      await this.d.bus.publish({ kind: 'registry' }, tx)
      return after
    })
    await applied(this.d, { kind: 'registry' })
    // Other names now count for this backend.
    if (c.mailHosts !== undefined) this.d.counts?.reset()
    return this.#view(row)
  }

  async remove(actor: string, id: string): Promise<void> {
    const counts = await this.#counts(true)
    const held = counts?.get(id) ?? 0
    if (held > 0) throw new AdminError(ErrorCodes.BACKEND_IN_USE, `backend ${id} still holds ${held} account(s): move them first`)
    const kind = await this.d.store.transaction(async (tx) => {
      const before = await this.#row(tx, id, true)
      const moves = await tx.query(`select 1 from moves where target_backend = $1 and state = any($2) limit 1`, [id, UNFINISHED])
      if (moves.rows.length > 0) throw new AdminError(ErrorCodes.BACKEND_IN_USE, `backend ${id} is the target of unfinished moves`)
      const members = before.kind === 'pool' ? await membersOf(tx, [id]) : []
      // The members go with the pool (on delete cascade); their health records and the pool's
      // pins have no foreign key, so they are dropped here.
      await tx.query('delete from backends where id = $1', [id])
      for (const server of [id, ...members.map((m) => m.id)]) await forgetHealth(tx, server)
      if (before.kind === 'pool') await dropPins(tx, { pool: id })
      await recordAudit(tx, { actor, action: 'delete', subjectType: 'backend', subject: id, before: recorded(before, members) })
      await this.d.bus.publish({ kind: 'registry' }, tx)
      if (before.kind === 'pool') await this.d.bus.publish({ kind: 'pins', pool: id }, tx)
      return before.kind
    })
    await applied(this.d, { kind: 'registry' })
    if (kind === 'pool') await applied(this.d, { kind: 'pins', pool: id })
  }

  #row(db: Queryable, id: string, lock = false): Promise<Row> {
    return rowOf<Row>(db, BACKENDS_TABLE, id, lock)
  }

  /** A name (id or mailHost) must mean one backend only, or routing would depend on load order. */
  async #checkNames(tx: Queryable, id: string, mailHosts: readonly string[]): Promise<void> {
    const names = [id.toLowerCase(), ...mailHosts]
    const { rows } = await tx.query<{ id: string; name: string }>(
      `select b.id, n.name from backends b, unnest(array_prepend(lower(b.id), b.mailhosts)) as n(name)
        where b.id <> $1 and lower(n.name) = any($2)`,
      [id, names],
    )
    if (rows[0]) throw new AdminError(ErrorCodes.CONFLICT, `${rows[0].name} already names backend ${rows[0].id}`)
  }

  async #counts(fresh = false): Promise<Map<string, number> | undefined> {
    if (!this.d.counts) return undefined
    if (fresh) this.d.counts.reset()
    return this.d.counts.byBackend(this.d.registry())
  }
}

function normaliseHosts(hosts: readonly string[]): string[] {
  return [...new Set(hosts.map((h) => h.trim().toLowerCase()).filter((h) => h !== ''))]
}
