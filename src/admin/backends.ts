// Backends through the admin API: the registry rows in the store, with live account counts and
// the health states the checks recorded.
// Every write is audited in its own transaction and announced as a registry change, so every
// instance reloads its registry. A backend that still holds accounts, or that a move is about
// to fill, cannot be removed.

import { isIP } from 'node:net'
import { AdminError, ErrorCodes } from '../errors.js'
import { forgetHealth, healthRecords } from '../health/health-repo.js'
import type { AdminState } from '../resolve/registry.js'
import { BACKEND_COLUMNS, type BackendRow } from '../store/registry-repo.js'
import type { Queryable } from '../store/store.js'
import { recordAudit } from './audit.js'
import { applied, sqlState, rowOf, type AdminDeps, type ObjectTable } from './context.js'
import type { PendingAnswer } from './idempotency.js'
import { UNFINISHED } from './move-states.js'
import type { BackendChanges, BackendHealth, BackendView, NewBackend } from './shapes.js'

interface Row extends BackendRow {
  weight: number
  capacity: number | null
  admin_state: AdminState
}

const COLUMNS = `${BACKEND_COLUMNS}, weight, capacity, admin_state`
const TABLE: ObjectTable = { table: 'backends', columns: COLUMNS, key: 'id', what: 'backend' }

const view = (r: Row, accounts: number | null, health: BackendHealth = {}): BackendView => ({
  id: r.id,
  mailHosts: r.mailhosts,
  address: r.address ?? '',
  route: r.route,
  ports: { lmtp: r.lmtp_port, smtp: r.smtp_port, imap: r.imap_port, pop3: r.pop3_port },
  weight: r.weight,
  capacity: r.capacity,
  adminState: r.admin_state,
  accounts,
  health,
})

/** What the audit log records: the stored fields, without the count and the health. */
const recorded = (r: Row) => {
  const { accounts: _accounts, health: _health, ...rest } = view(r, null)
  return rest
}

/** The recorded health states by backend id. */
async function healthByBackend(db: Queryable): Promise<Map<string, BackendHealth>> {
  const out = new Map<string, BackendHealth>()
  for (const { backend, service, ...state } of await healthRecords(db)) out.set(backend, { ...out.get(backend), [service]: state })
  return out
}

export class Backends {
  constructor(private readonly d: AdminDeps) {}

  async list(): Promise<BackendView[]> {
    const { rows } = await this.d.store.query<Row>(`select ${COLUMNS} from backends order by id`)
    const counts = await this.#counts()
    const health = await healthByBackend(this.d.store)
    return rows.map((r) => view(r, counts?.get(r.id) ?? (counts ? 0 : null), health.get(r.id)))
  }

  async get(id: string): Promise<BackendView> {
    const row = await this.#row(this.d.store, id)
    const counts = await this.#counts()
    return view(row, counts?.get(id) ?? (counts ? 0 : null), (await healthByBackend(this.d.store)).get(id))
  }

  async create(actor: string, b: NewBackend, answer?: PendingAnswer): Promise<BackendView> {
    checkAddress(b.address)
    const mailHosts = normaliseHosts(b.mailHosts ?? [])
    const row = await this.d.store.transaction(async (tx) => {
      await this.#checkNames(tx, b.id, mailHosts)
      const p = { lmtp: 24, smtp: 25, imap: 143, pop3: 110, ...b.ports }
      let inserted: Row
      try {
        ;[inserted] = (
          await tx.query<Row>(
            `insert into backends (id, mailhosts, address, route, lmtp_port, smtp_port, imap_port, pop3_port, weight, capacity, admin_state)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) returning ${COLUMNS}`,
            [b.id, mailHosts, b.address, b.route ?? 'lmtp', p.lmtp, p.smtp, p.imap, p.pop3, b.weight ?? 1, b.capacity ?? null, b.adminState ?? 'active'],
          )
        ).rows as [Row]
      } catch (e) {
        if (sqlState(e) === '23505') throw new AdminError(ErrorCodes.CONFLICT, `backend ${b.id} exists already`)
        throw e
      }
      await recordAudit(tx, { actor, action: 'create', subjectType: 'backend', subject: b.id, after: recorded(inserted) })
      await this.d.bus.publish({ kind: 'registry' }, tx)
      const created = view(inserted, 0, (await healthByBackend(tx)).get(inserted.id))
      if (answer) await answer.seal(tx, created)
      return created
    })
    await applied(this.d, { kind: 'registry' })
    return row
  }

  async update(actor: string, id: string, c: BackendChanges): Promise<BackendView> {
    if (c.address !== undefined) checkAddress(c.address)
    const row = await this.d.store.transaction(async (tx) => {
      const before = await this.#row(tx, id, true)
      const mailHosts = c.mailHosts === undefined ? before.mailhosts : normaliseHosts(c.mailHosts)
      if (c.mailHosts !== undefined) await this.#checkNames(tx, id, mailHosts)
      const p = { lmtp: before.lmtp_port, smtp: before.smtp_port, imap: before.imap_port, pop3: before.pop3_port, ...c.ports }
      const [after] = (
        await tx.query<Row>(
          `update backends set mailhosts = $2, address = $3, route = $4, lmtp_port = $5, smtp_port = $6, imap_port = $7,
                  pop3_port = $8, weight = $9, capacity = $10, admin_state = $11, updated_at = now()
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
          ],
        )
      ).rows as [Row]
      await recordAudit(tx, { actor, action: 'update', subjectType: 'backend', subject: id, before: recorded(before), after: recorded(after) })
      await this.d.bus.publish({ kind: 'registry' }, tx)
      return after
    })
    await applied(this.d, { kind: 'registry' })
    // Other names now count for this backend.
    if (c.mailHosts !== undefined) this.d.counts?.reset()
    const counts = await this.#counts()
    return view(row, counts?.get(id) ?? (counts ? 0 : null), (await healthByBackend(this.d.store)).get(id))
  }

  async remove(actor: string, id: string): Promise<void> {
    const counts = await this.#counts(true)
    const held = counts?.get(id) ?? 0
    if (held > 0) throw new AdminError(ErrorCodes.BACKEND_IN_USE, `backend ${id} still holds ${held} account(s): move them first`)
    await this.d.store.transaction(async (tx) => {
      const before = await this.#row(tx, id, true)
      const moves = await tx.query(`select 1 from moves where target_backend = $1 and state = any($2) limit 1`, [id, UNFINISHED])
      if (moves.rows.length > 0) throw new AdminError(ErrorCodes.BACKEND_IN_USE, `backend ${id} is the target of unfinished moves`)
      await tx.query('delete from backends where id = $1', [id])
      await forgetHealth(tx, id)
      await recordAudit(tx, { actor, action: 'delete', subjectType: 'backend', subject: id, before: recorded(before) })
      await this.d.bus.publish({ kind: 'registry' }, tx)
    })
    await applied(this.d, { kind: 'registry' })
  }

  #row(db: Queryable, id: string, lock = false): Promise<Row> {
    return rowOf<Row>(db, TABLE, id, lock)
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

function checkAddress(address: string): void {
  if (isIP(address) === 0) throw new AdminError(ErrorCodes.VALIDATION, `address must be an IP address (proxies need IP literals): ${address}`)
}

function normaliseHosts(hosts: readonly string[]): string[] {
  return [...new Set(hosts.map((h) => h.trim().toLowerCase()).filter((h) => h !== ''))]
}
