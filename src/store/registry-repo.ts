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

export const BACKEND_COLUMNS = 'id, mailhosts, address, route, lmtp_port, smtp_port, imap_port, pop3_port'
const DOMAIN_COLUMNS = 'name, alias_for, catch_all'

const CONFIG_ACTOR = 'config'

export async function seedFromConfig(store: Store, config: Config): Promise<void> {
  const backends = config.backends.map(backendRow)
  // A domain must exist before an alias domain can reference it; config forbids alias chains,
  // so targets-first is a two-way partition.
  const domains = config.domains.map(domainRow).sort((a, b) => Number(a.alias_for !== null) - Number(b.alias_for !== null))

  await store.transaction(async (tx) => {
    // Instances starting together would otherwise race on the same inserts and audit rows twice.
    await tx.query(`select pg_advisory_xact_lock(${ADVISORY_LOCKS.seed})`)

    const oldBackends = await rowsById<BackendRow>(
      tx,
      `select ${BACKEND_COLUMNS} from backends where id = any($1) for update`,
      backends.map((b) => b.id),
      (r) => r.id,
    )
    for (const b of backends) {
      const before = oldBackends.get(b.id)
      if (before !== undefined && sameRow(before, b)) continue
      await tx.query(
        `insert into backends (${BACKEND_COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7, $8)
         on conflict (id) do update set
           mailhosts = excluded.mailhosts, address = excluded.address, route = excluded.route,
           lmtp_port = excluded.lmtp_port, smtp_port = excluded.smtp_port,
           imap_port = excluded.imap_port, pop3_port = excluded.pop3_port, updated_at = now()`,
        [b.id, b.mailhosts, b.address, b.route, b.lmtp_port, b.smtp_port, b.imap_port, b.pop3_port],
      )
      await audit(tx, 'backend', b.id, before, b)
    }

    const oldDomains = await rowsById<DomainRow>(
      tx,
      `select ${DOMAIN_COLUMNS} from domains where name = any($1) for update`,
      domains.map((d) => d.name),
      (r) => r.name,
    )
    for (const d of domains) {
      const before = oldDomains.get(d.name)
      if (before !== undefined && sameRow(before, d)) continue
      await tx.query(
        `insert into domains (${DOMAIN_COLUMNS}) values ($1, $2, $3)
         on conflict (name) do update set
           alias_for = excluded.alias_for, catch_all = excluded.catch_all, updated_at = now()`,
        [d.name, d.alias_for, d.catch_all],
      )
      await audit(tx, 'domain', d.name, before, d)
    }
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

async function rowsById<R>(
  tx: Queryable,
  sql: string,
  ids: readonly string[],
  key: (r: R) => string,
): Promise<Map<string, R>> {
  const { rows } = await tx.query<R>(sql, [ids])
  return new Map(rows.map((r) => [key(r), r]))
}

/** Compares only the columns `want` carries, in its key order, so extra columns never count. */
function sameRow<R extends object>(have: R, want: R): boolean {
  const pick = (r: R) => JSON.stringify(Object.keys(want).map((k) => r[k as keyof R]))
  return pick(have) === pick(want)
}

function audit(tx: Queryable, subjectType: 'backend' | 'domain', subject: string, before: object | undefined, after: object) {
  return recordAudit(tx, { actor: CONFIG_ACTOR, action: before === undefined ? 'create' : 'update', subjectType, subject, before, after })
}
