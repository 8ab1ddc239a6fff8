// Served domains through the admin API: local domains, alias domains, catch-alls and the
// placement affinity. The same rules as the configuration file (an alias domain points at a
// local domain and has no catch-all of its own), enforced here and by the schema's checks.

import { AdminError, ErrorCodes } from '../errors.js'
import { canonicalAddress, canonicalDomain } from '../resolve/address.js'
import type { Queryable } from '../store/store.js'
import { recordAudit } from './audit.js'
import { applied, sqlState, rowOf, type AdminDeps, type ObjectTable } from './context.js'
import type { PendingAnswer } from './idempotency.js'
import type { DomainChanges, DomainView, NewDomain } from './shapes.js'

interface Row {
  name: string
  alias_for: string | null
  catch_all: string[] | null
  backend_affinity: string | null
}

const COLUMNS = 'name, alias_for, catch_all, backend_affinity'
const TABLE: ObjectTable = { table: 'domains', columns: COLUMNS, key: 'name', what: 'domain' }

const view = (r: Row): DomainView => ({
  name: r.name,
  ...(r.alias_for === null ? {} : { aliasFor: r.alias_for }),
  ...(r.catch_all === null ? {} : { catchAll: r.catch_all }),
  ...(r.backend_affinity === null ? {} : { affinity: r.backend_affinity }),
})

export class Domains {
  constructor(private readonly d: AdminDeps) {}

  async list(): Promise<DomainView[]> {
    const { rows } = await this.d.store.query<Row>(`select ${COLUMNS} from domains order by name`)
    return rows.map(view)
  }

  async get(name: string): Promise<DomainView> {
    return view(await this.#row(this.d.store, domainName(name)))
  }

  async create(actor: string, n: NewDomain, answer?: PendingAnswer): Promise<DomainView> {
    const name = domainName(n.name)
    const row = await this.d.store.transaction(async (tx) => {
      const values = await this.#checked(tx, name, { aliasFor: n.aliasFor ?? null, catchAll: n.catchAll ?? null, affinity: n.affinity ?? null })
      let inserted: Row
      try {
        ;[inserted] = (
          await tx.query<Row>(`insert into domains (name, alias_for, catch_all, backend_affinity) values ($1, $2, $3, $4) returning ${COLUMNS}`, [
            name,
            values.aliasFor,
            values.catchAll,
            values.affinity,
          ])
        ).rows as [Row]
      } catch (e) {
        if (sqlState(e) === '23505') throw new AdminError(ErrorCodes.CONFLICT, `domain ${name} exists already`)
        throw e
      }
      await recordAudit(tx, { actor, action: 'create', subjectType: 'domain', subject: name, after: view(inserted) })
      await this.d.bus.publish({ kind: 'registry' }, tx)
      if (answer) await answer.seal(tx, view(inserted))
      return inserted
    })
    await applied(this.d, { kind: 'registry' })
    return view(row)
  }

  async update(actor: string, rawName: string, c: DomainChanges): Promise<DomainView> {
    const name = domainName(rawName)
    const row = await this.d.store.transaction(async (tx) => {
      const before = await this.#row(tx, name, true)
      const values = await this.#checked(tx, name, {
        aliasFor: c.aliasFor === undefined ? before.alias_for : c.aliasFor,
        catchAll: c.catchAll === undefined ? before.catch_all : c.catchAll,
        affinity: c.affinity === undefined ? before.backend_affinity : c.affinity,
      })
      if (values.aliasFor !== null) {
        const aliases = await tx.query('select 1 from domains where alias_for = $1 limit 1', [name])
        if (aliases.rows.length > 0) throw new AdminError(ErrorCodes.CONFLICT, `${name} has alias domains of its own; it cannot become an alias domain`)
      }
      const [after] = (
        await tx.query<Row>(
          `update domains set alias_for = $2, catch_all = $3, backend_affinity = $4, updated_at = now() where name = $1 returning ${COLUMNS}`,
          [name, values.aliasFor, values.catchAll, values.affinity],
        )
      ).rows as [Row]
      await recordAudit(tx, { actor, action: 'update', subjectType: 'domain', subject: name, before: view(before), after: view(after) })
      await this.d.bus.publish({ kind: 'registry' }, tx)
      return after
    })
    await applied(this.d, { kind: 'registry' })
    return view(row)
  }

  async remove(actor: string, rawName: string): Promise<void> {
    const name = domainName(rawName)
    if (this.d.writer) {
      const page = await this.d.writer.list({ domain: name, limit: 1 })
      if (page.accounts.length > 0) throw new AdminError(ErrorCodes.CONFLICT, `domain ${name} still has accounts`)
    }
    await this.d.store.transaction(async (tx) => {
      const before = await this.#row(tx, name, true)
      const aliases = await tx.query<{ name: string }>('select name from domains where alias_for = $1 order by name', [name])
      if (aliases.rows.length > 0) {
        throw new AdminError(ErrorCodes.CONFLICT, `domain ${name} is the target of alias domain(s) ${aliases.rows.map((r) => r.name).join(', ')}`)
      }
      await tx.query('delete from domains where name = $1', [name])
      await recordAudit(tx, { actor, action: 'delete', subjectType: 'domain', subject: name, before: view(before) })
      await this.d.bus.publish({ kind: 'registry' }, tx)
    })
    await applied(this.d, { kind: 'registry' })
  }

  #row(db: Queryable, name: string, lock = false): Promise<Row> {
    return rowOf<Row>(db, TABLE, name, lock)
  }

  async #checked(
    tx: Queryable,
    name: string,
    v: { aliasFor: string | null; catchAll: string[] | null; affinity: string | null },
  ): Promise<{ aliasFor: string | null; catchAll: string[] | null; affinity: string | null }> {
    const aliasFor = v.aliasFor === null ? null : domainName(v.aliasFor)
    if (aliasFor !== null) {
      if (aliasFor === name) throw new AdminError(ErrorCodes.VALIDATION, 'a domain cannot be an alias of itself')
      const target = await tx.query<{ alias_for: string | null }>('select alias_for from domains where name = $1', [aliasFor])
      if (!target.rows[0]) throw new AdminError(ErrorCodes.VALIDATION, `aliasFor: ${aliasFor} is not a served domain`)
      if (target.rows[0].alias_for !== null) throw new AdminError(ErrorCodes.VALIDATION, `aliasFor: ${aliasFor} is itself an alias domain`)
      if (v.catchAll !== null && v.catchAll.length > 0) throw new AdminError(ErrorCodes.VALIDATION, "an alias domain uses its target's catch-all")
    }
    let catchAll: string[] | null = null
    if (v.catchAll !== null && v.catchAll.length > 0) {
      catchAll = v.catchAll.map((t) => {
        const c = canonicalAddress(t, this.d.config.addresses)
        if (!c.ok) throw new AdminError(ErrorCodes.VALIDATION, `catchAll: not an address: ${t}`)
        return c.address
      })
    }
    if (v.affinity !== null) {
      const b = await tx.query('select 1 from backends where id = $1', [v.affinity])
      if (b.rows.length === 0) throw new AdminError(ErrorCodes.VALIDATION, `affinity: no backend ${v.affinity}`)
    }
    return { aliasFor, catchAll, affinity: v.affinity }
  }
}

function domainName(raw: string): string {
  const name = canonicalDomain(raw)
  if (name === undefined || !name.includes('.')) throw new AdminError(ErrorCodes.VALIDATION, `not a valid domain: ${raw}`)
  return name
}
