// Pool members in the store, as the admin API writes and shows them: shared by /v1/backends (a
// pool is created with its members and deleted with them) and /v1/pools (members added, weighted,
// drained and removed one at a time). Member ids share the backend id namespace, because a member
// is named alone in local/<id> maps, health records and URLs; every admin write that takes a
// server id holds one advisory lock while it checks and inserts, so two requests can never both
// find an id free.

import { isIP } from 'node:net'
import { AdminError, ErrorCodes } from '../errors.js'
import type { AdminState, BackendPorts } from '../resolve/registry.js'
import { ADVISORY_LOCKS } from '../store/locks.js'
import { MEMBER_COLUMNS, type MemberRow } from '../store/registry-repo.js'
import type { Queryable } from '../store/store.js'
import type { BackendHealth, NewMember, PoolMemberView } from './shapes.js'

export interface StoredMember extends Required<MemberRow> {
  admin_state: AdminState
}

export const STORED_MEMBER_COLUMNS = `${MEMBER_COLUMNS}, admin_state`

/** The members of these pools (every pool's when `pools` is undefined), by pool then id. */
export async function membersOf(db: Queryable, pools?: readonly string[]): Promise<StoredMember[]> {
  const { rows } = await db.query<StoredMember>(
    `select ${STORED_MEMBER_COLUMNS} from pool_members where $1::text[] is null or pool_id = any($1) order by pool_id, id`,
    [pools ?? null],
  )
  return rows
}

/** A member as the API shows it: its own ports where it set them, else the pool's. */
export function memberView(m: StoredMember, poolPorts: BackendPorts, health: BackendHealth = {}): PoolMemberView {
  return {
    id: m.id,
    address: m.address,
    ports: { lmtp: m.lmtp_port ?? poolPorts.lmtp, smtp: m.smtp_port ?? poolPorts.smtp, imap: m.imap_port ?? poolPorts.imap, pop3: m.pop3_port ?? poolPorts.pop3 },
    weight: m.weight,
    adminState: m.admin_state,
    health,
  }
}

/** What the audit log records of a member: the stored fields, its own ports only. */
export function recordedMember(m: StoredMember) {
  const own = { lmtp: m.lmtp_port, smtp: m.smtp_port, imap: m.imap_port, pop3: m.pop3_port }
  return {
    id: m.id,
    address: m.address,
    ports: Object.fromEntries(Object.entries(own).filter(([, v]) => v !== null)),
    weight: m.weight,
    adminState: m.admin_state,
  }
}

/**
 * Takes the server-id lock for the rest of `tx`, then refuses any of `ids` that names a backend
 * or a member already (case-insensitively, as mailHosts are compared), or appears twice.
 */
export async function claimServerIds(tx: Queryable, ids: readonly string[]): Promise<void> {
  await tx.query(`select pg_advisory_xact_lock(${ADVISORY_LOCKS.serverIds})`)
  const seen = new Set<string>()
  for (const id of ids) {
    if (seen.has(id.toLowerCase())) throw new AdminError(ErrorCodes.CONFLICT, `${id} is named twice: backend and member ids are one namespace`)
    seen.add(id.toLowerCase())
  }
  const { rows } = await tx.query<{ id: string; what: string }>(
    `select id, 'backend' as what from backends where lower(id) = any($1)
     union all select id, 'member of pool ' || pool_id as what from pool_members where lower(id) = any($1)`,
    [[...seen]],
  )
  if (rows[0]) throw new AdminError(ErrorCodes.CONFLICT, `${rows[0].id} already names a ${rows[0].what}: backend and member ids are one namespace`)
}

export function checkAddress(address: string, field = 'address'): void {
  if (isIP(address) === 0) throw new AdminError(ErrorCodes.VALIDATION, `${field} must be an IP address (proxies need IP literals): ${address}`)
}

/** Inserts a member of `pool` (ids claimed by the caller); a null port is the pool's. */
export async function insertMember(tx: Queryable, pool: string, m: NewMember): Promise<StoredMember> {
  const { rows } = await tx.query<StoredMember>(
    `insert into pool_members (id, pool_id, address, lmtp_port, smtp_port, imap_port, pop3_port, weight, admin_state)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning ${STORED_MEMBER_COLUMNS}`,
    [m.id, pool, m.address, m.ports?.lmtp ?? null, m.ports?.smtp ?? null, m.ports?.imap ?? null, m.ports?.pop3 ?? null, m.weight ?? 1, m.adminState ?? 'active'],
  )
  return rows[0]!
}
