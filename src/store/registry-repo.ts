// The cluster registry in the store: seeded from the configuration at start, read back as the
// snapshot lookups use. Config wins for the fields it sets; rows it does not mention, and the
// fields it has no say over (weight, capacity, admin state, affinity), are left to the admin API.

import { recordAudit } from '../admin/audit.js'
import { ConfigError } from '../errors.js'
import type { BackendConfig, Config, DomainConfig } from '../config/schema.js'
import { canonicalDomain } from '../resolve/address.js'
import type { AdminState, BackendInfo, DomainInfo, RouteStyle } from '../resolve/registry.js'
import { ADVISORY_LOCKS } from './locks.js'
import type { Queryable, Store } from './store.js'

/** A backends row as the config seeds it (the admin API's rows add weight, capacity, admin_state). */
export interface BackendRow {
  id: string
  mailhosts: string[]
  address: string
  route: RouteStyle
  lmtp_port: number
  smtp_port: number
  imap_port: number
  pop3_port: number
}

interface DomainRow {
  name: string
  alias_for: string | null
  catch_all: string[] | null
}

/** A table the configuration seeds: which columns it sets, its key, and how its audit rows name it. */
interface SeedTable<R> {
  readonly table: string
  readonly columns: readonly (keyof R & string)[]
  readonly key: keyof R & string
  readonly subjectType: 'backend' | 'domain'
}

const BACKENDS_TABLE: SeedTable<BackendRow> = {
  table: 'backends',
  columns: ['id', 'mailhosts', 'address', 'route', 'lmtp_port', 'smtp_port', 'imap_port', 'pop3_port'],
  key: 'id',
  subjectType: 'backend',
}
const DOMAINS_TABLE: SeedTable<DomainRow> = { table: 'domains', columns: ['name', 'alias_for', 'catch_all'], key: 'name', subjectType: 'domain' }

export const BACKEND_COLUMNS = BACKENDS_TABLE.columns.join(', ')
const DOMAIN_COLUMNS = DOMAINS_TABLE.columns.join(', ')

const CONFIG_ACTOR = 'config'

export async function seedFromConfig(store: Store, config: Config): Promise<void> {
  const backends = config.backends.map(backendRow)
  // A domain must exist before an alias domain can reference it; config forbids alias chains,
  // so targets-first is a two-way partition.
  const domains = config.domains.map(domainRow).sort((a, b) => Number(a.alias_for !== null) - Number(b.alias_for !== null))

  await store.transaction(async (tx) => {
    // Instances starting together would otherwise race on the same inserts and audit rows twice.
    await tx.query(`select pg_advisory_xact_lock(${ADVISORY_LOCKS.seed})`)

    await seedTable(tx, BACKENDS_TABLE, backends)
    await seedTable(tx, DOMAINS_TABLE, domains)
  })
}

export async function loadRegistry(store: Store): Promise<{ domains: DomainInfo[]; backends: BackendInfo[] }> {
  // admin_state is not seeded from the config (an admin sets it), so it is read here only.
  const b = await store.query<BackendRow & { admin_state: AdminState; weight: number; capacity: number | null }>(
    `select ${BACKEND_COLUMNS}, admin_state, weight, capacity from backends order by id`,
  )
  const d = await store.query<DomainRow & { backend_affinity: string | null }>(`select ${DOMAIN_COLUMNS}, backend_affinity from domains order by name`)
  return {
    backends: b.rows.map((r) => ({
      id: r.id,
      mailHosts: r.mailhosts,
      address: r.address,
      route: r.route,
      ports: { lmtp: r.lmtp_port, smtp: r.smtp_port, imap: r.imap_port, pop3: r.pop3_port },
      adminState: r.admin_state,
      weight: r.weight,
      capacity: r.capacity,
    })),
    domains: d.rows.map((r) => ({
      name: r.name,
      ...(r.alias_for === null ? {} : { aliasFor: r.alias_for }),
      ...(r.catch_all === null ? {} : { catchAll: r.catch_all }),
      ...(r.backend_affinity === null ? {} : { affinity: r.backend_affinity }),
    })),
  }
}

function backendRow(b: BackendConfig): BackendRow {
  return {
    id: b.id,
    mailhosts: [...b.mailHosts],
    address: b.address,
    route: b.route,
    lmtp_port: b.ports.lmtp,
    smtp_port: b.ports.smtp,
    imap_port: b.ports.imap,
    pop3_port: b.ports.pop3,
  }
}

function domainRow(d: DomainConfig, i: number): DomainRow {
  const canonical = (name: string, key: string) => {
    const c = canonicalDomain(name)
    if (c === undefined) throw new ConfigError(`domains[${i}].${key}`, `not a valid domain: ${name}`)
    return c
  }
  return {
    name: canonical(d.name, 'name'),
    alias_for: d.aliasFor === undefined ? null : canonical(d.aliasFor, 'aliasFor'),
    catch_all: d.catchAll === undefined ? null : d.catchAll.map((t) => t.toLowerCase()),
  }
}

/**
 * Inserts or updates each row of `rows` whose seeded columns differ from what the table holds,
 * with an audit row of before and after; rows the config does not name, and the columns it does
 * not seed, are left alone. Rows are locked first so instances seeding together see each other.
 */
async function seedTable<R extends object>(tx: Queryable, t: SeedTable<R>, rows: readonly R[]): Promise<void> {
  const columns = t.columns.join(', ')
  const idOf = (r: R) => String(r[t.key])
  const { rows: held } = await tx.query<R>(`select ${columns} from ${t.table} where ${t.key} = any($1) for update`, [rows.map(idOf)])
  const old = new Map(held.map((r) => [idOf(r), r]))
  const values = t.columns.map((_, i) => `$${i + 1}`).join(', ')
  const updates = t.columns.filter((c) => c !== t.key).map((c) => `${c} = excluded.${c}`)
  for (const row of rows) {
    const before = old.get(idOf(row))
    if (before !== undefined && sameRow(before, row)) continue
    await tx.query(
      `insert into ${t.table} (${columns}) values (${values}) on conflict (${t.key}) do update set ${[...updates, 'updated_at = now()'].join(', ')}`,
      t.columns.map((c) => row[c]),
    )
    await audit(tx, t.subjectType, idOf(row), before, row)
  }
}

/** Compares only the columns `want` carries, in its key order, so extra columns never count. */
function sameRow<R extends object>(have: R, want: R): boolean {
  const pick = (r: R) => JSON.stringify(Object.keys(want).map((k) => r[k as keyof R]))
  return pick(have) === pick(want)
}

function audit(tx: Queryable, subjectType: 'backend' | 'domain', subject: string, before: object | undefined, after: object) {
  return recordAudit(tx, { actor: CONFIG_ACTOR, action: before === undefined ? 'create' : 'update', subjectType, subject, before, after })
}
