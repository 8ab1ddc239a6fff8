// The cluster registry in the store: seeded from the configuration at start, read back as the
// snapshot lookups use. Config wins for the fields it sets; rows it does not mention, and the
// fields it has no say over (weight, capacity, admin state, affinity), are left to the admin API.

import { recordAudit } from '../admin/audit.js'
import { ConfigError } from '../errors.js'
import { toMs } from '../config/duration.js'
import { DEFAULT_PIN_FOR, type BackendConfig, type Config, type DomainConfig } from '../config/schema.js'
import { canonicalDomain } from '../resolve/address.js'
import type { AdminState, BackendInfo, BackendPorts, DomainInfo, PoolMember, RouteStyle } from '../resolve/registry.js'
import type { BackendKind } from '../resolve/vocabulary.js'
import { ADVISORY_LOCKS } from './locks.js'
import type { Queryable, Store } from './store.js'

/** A backends row as the config seeds it (the admin API's rows add weight, capacity, admin_state). */
export interface BackendRow {
  id: string
  kind: BackendKind
  mailhosts: string[]
  /** Null for a pool. */
  address: string | null
  route: RouteStyle
  lmtp_port: number
  smtp_port: number
  imap_port: number
  pop3_port: number
  /** Pools only. */
  pin_for_ms: number | null
  director_tag: string | null
  director_address: string | null
}

/** A pool_members row as the config seeds it; weight only when the config sets it. */
export interface MemberRow {
  id: string
  pool_id: string
  address: string
  lmtp_port: number | null
  smtp_port: number | null
  imap_port: number | null
  pop3_port: number | null
  weight?: number
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
  readonly subjectType: 'backend' | 'domain' | 'pool'
}

const BACKENDS_TABLE: SeedTable<BackendRow> = {
  table: 'backends',
  columns: ['id', 'kind', 'mailhosts', 'address', 'route', 'lmtp_port', 'smtp_port', 'imap_port', 'pop3_port', 'pin_for_ms', 'director_tag', 'director_address'],
  key: 'id',
  subjectType: 'backend',
}
const MEMBERS_TABLE: SeedTable<MemberRow> = {
  table: 'pool_members',
  columns: ['id', 'pool_id', 'address', 'lmtp_port', 'smtp_port', 'imap_port', 'pop3_port', 'weight'],
  key: 'id',
  subjectType: 'pool',
}
export const MEMBER_COLUMNS = MEMBERS_TABLE.columns.join(', ')
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
    await seedTable(tx, MEMBERS_TABLE, config.backends.flatMap(memberRows))
    await seedTable(tx, DOMAINS_TABLE, domains)
  })
}

export async function loadRegistry(store: Store): Promise<{ domains: DomainInfo[]; backends: BackendInfo[] }> {
  // admin_state is not seeded from the config (an admin sets it), so it is read here only.
  const b = await store.query<BackendRow & { admin_state: AdminState; weight: number; capacity: number | null }>(
    `select ${BACKEND_COLUMNS}, admin_state, weight, capacity from backends order by id`,
  )
  const m = await store.query<Required<MemberRow> & { admin_state: AdminState }>(`select ${MEMBER_COLUMNS}, admin_state from pool_members order by pool_id, id`)
  const d = await store.query<DomainRow & { backend_affinity: string | null }>(`select ${DOMAIN_COLUMNS}, backend_affinity from domains order by name`)
  return { backends: b.rows.map((r) => backendInfo(r, m.rows)), domains: d.rows.map(domainInfo) }
}

/** A backend as the registry holds it: a host, or a pool with its members (ports default to the pool's). */
export function backendInfo(
  r: BackendRow & { admin_state: AdminState; weight: number; capacity: number | null },
  members: readonly (Required<MemberRow> & { admin_state: AdminState })[],
): BackendInfo {
  const common = { id: r.id, mailHosts: r.mailhosts, route: r.route, adminState: r.admin_state, weight: r.weight, capacity: r.capacity }
  const ports: BackendPorts = { lmtp: r.lmtp_port, smtp: r.smtp_port, imap: r.imap_port, pop3: r.pop3_port }
  if (r.kind === 'host') return { ...common, kind: 'host', address: r.address!, ports }
  return {
    ...common,
    kind: 'pool',
    ports,
    pinForMs: r.pin_for_ms ?? toMs(DEFAULT_PIN_FOR),
    ...(r.director_tag !== null && r.director_address !== null ? { director: { tag: r.director_tag, address: r.director_address } } : {}),
    members: members
      .filter((x) => x.pool_id === r.id)
      .map(
        (x): PoolMember => ({
          kind: 'member',
          id: x.id,
          pool: r.id,
          address: x.address,
          route: r.route,
          ports: { lmtp: x.lmtp_port ?? ports.lmtp, smtp: x.smtp_port ?? ports.smtp, imap: x.imap_port ?? ports.imap, pop3: x.pop3_port ?? ports.pop3 },
          weight: x.weight,
          adminState: x.admin_state,
        }),
      ),
  }
}

function domainInfo(r: DomainRow & { backend_affinity: string | null }): DomainInfo {
  return {
    name: r.name,
    ...(r.alias_for === null ? {} : { aliasFor: r.alias_for }),
    ...(r.catch_all === null ? {} : { catchAll: r.catch_all }),
    ...(r.backend_affinity === null ? {} : { affinity: r.backend_affinity }),
  }
}

function backendRow(b: BackendConfig): BackendRow {
  const pool = b.kind === 'pool'
  return {
    id: b.id,
    kind: b.kind,
    mailhosts: [...b.mailHosts],
    address: pool ? null : b.address!,
    route: b.route,
    lmtp_port: b.ports.lmtp,
    smtp_port: b.ports.smtp,
    imap_port: b.ports.imap,
    pop3_port: b.ports.pop3,
    pin_for_ms: pool ? toMs(b.pinFor ?? DEFAULT_PIN_FOR) : null,
    director_tag: b.director?.tag ?? null,
    director_address: b.director?.address ?? null,
  }
}

function memberRows(b: BackendConfig): MemberRow[] {
  return (b.members ?? []).map((m) => ({
    id: m.id,
    pool_id: b.id,
    address: m.address,
    lmtp_port: m.ports?.lmtp ?? null,
    smtp_port: m.ports?.smtp ?? null,
    imap_port: m.ports?.imap ?? null,
    pop3_port: m.ports?.pop3 ?? null,
    ...(m.weight === undefined ? {} : { weight: m.weight }),
  }))
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
  const idOf = (r: R) => String(r[t.key])
  const { rows: held } = await tx.query<R>(`select ${t.columns.join(', ')} from ${t.table} where ${t.key} = any($1) for update`, [rows.map(idOf)])
  const old = new Map(held.map((r) => [idOf(r), r]))
  for (const row of rows) {
    const before = old.get(idOf(row))
    if (before !== undefined && sameRow(before, row)) continue
    // A column the row leaves undefined (a member's weight the config does not set) is not seeded.
    const columns = t.columns.filter((c) => row[c] !== undefined)
    const values = columns.map((_, i) => `$${i + 1}`).join(', ')
    const updates = columns.filter((c) => c !== t.key).map((c) => `${c} = excluded.${c}`)
    await tx.query(
      `insert into ${t.table} (${columns.join(', ')}) values (${values}) on conflict (${t.key}) do update set ${[...updates, 'updated_at = now()'].join(', ')}`,
      columns.map((c) => row[c]),
    )
    await audit(tx, t.subjectType, idOf(row), before, row)
  }
}

/** Compares only the columns `want` sets, in its key order, so extra columns never count. */
function sameRow<R extends object>(have: R, want: R): boolean {
  const keys = Object.keys(want).filter((k) => want[k as keyof R] !== undefined)
  const pick = (r: R) => JSON.stringify(keys.map((k) => r[k as keyof R]))
  return pick(have) === pick(want)
}

function audit(tx: Queryable, subjectType: 'backend' | 'domain' | 'pool', subject: string, before: object | undefined, after: object) {
  return recordAudit(tx, { actor: CONFIG_ACTOR, action: before === undefined ? 'create' : 'update', subjectType, subject, before, after })
}
