// The cluster the pools acceptance (issue 15) runs on, from one peer set: PostgreSQL; two
// mailhostd instances A and B on it (SQL directory) whose one backend is the pool `pool1` of three
// real Dovecot backends sharing one mail directory (test/harness/dovecot-pool.ts), probed with
// short health settings; two Dovecot Lua proxies, proxy A asking instance A and proxy B asking
// instance B; 300 accounts on pool1 made through A's admin API, with the passwords the members'
// passwd-files hold (mailhostd checks them, then each member checks them again). Every member
// serves doveadm's HTTP API, which mailhostd's `doveadm` section points it at (kicks).
//
// Where a login landed is the member's IMAP ID answer (x-backend); where mail goes is mailhostd's
// transport answer, whose address names the member.

import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import type { Test } from 'tap'
import { adminApi, DEMO_TOKENS, type AdminApi } from '../harness/admin-api.js'
import { startDovecot, type Dovecot, type MailUser } from '../harness/dovecot.js'
import { landing, startSharedPool, type SharedPool } from '../harness/dovecot-pool.js'
import { postmapBatch, socketmap, startMailhostd, type Mailhostd } from '../harness/mailhostd.js'
import type { PeerSet } from '../harness/peer-set.js'
import { startPostgres, type Pg } from '../harness/postgres.js'

export const POOL = 'pool1'
/** Members and their configured weights: m2 carries twice the others' share. */
export const MEMBERS = [
  { id: 'm1', address: '127.0.0.11', weight: 1 },
  { id: 'm2', address: '127.0.0.12', weight: 2 },
  { id: 'm3', address: '127.0.0.13', weight: 1 },
] as const
export type MemberId = (typeof MEMBERS)[number]['id']
export const MEMBER_IDS: readonly string[] = MEMBERS.map((m) => m.id)

export const USER_COUNT = 300
export const USERS: readonly MailUser[] = Array.from({ length: USER_COUNT }, (_, i) => {
  const n = String(i + 1).padStart(3, '0')
  return { user: `user${n}@example.org`, password: `pw-${n}-pool` }
})
export const PASSWORD = new Map(USERS.map((u) => [u.user, u.password]))

// Short probe settings: a stopped member is down within seconds (a stopped member refuses
// connections, so the timeout does not lengthen that). The probe timeout is generous for a loaded
// two-core machine: a member that merely answers slowly must not be called down, which would move
// its users' pins while their sessions live on it (the churn run counts such splits).
export const HEALTH = { intervalMs: 1000, timeoutMs: 4000, rise: 2, fall: 2 }
/**
 * Down within: FALL failed rounds after the last good probe (a round starts every interval; a
 * refused connection fails at once, a hung one after the timeout), then the store write, every
 * instance's reload and the test's own polling (MARGIN_MS, generous for a loaded two-core
 * machine). Up again: the same with RISE.
 */
const MARGIN_MS = 8000
export const DOWN_WITHIN_MS = HEALTH.intervalMs * (HEALTH.fall + 1) + HEALTH.timeoutMs + MARGIN_MS
export const UP_WITHIN_MS = HEALTH.intervalMs * (HEALTH.rise + 1) + HEALTH.timeoutMs + MARGIN_MS

export interface PoolCluster {
  readonly set: PeerSet
  readonly pg: Pg
  readonly A: Mailhostd
  readonly B: Mailhostd
  readonly apiA: AdminApi
  readonly apiB: AdminApi
  readonly pool: SharedPool
  readonly proxyA: Dovecot
  readonly proxyB: Dovecot
  readonly pinForMs: number
  /** The accounts made on the pool (USERS unless the options name fewer). */
  readonly users: readonly MailUser[]
  /** The login secret: the Lua proxies' and nginx's X-Auth-Key. */
  readonly secret: string
}

export interface PoolClusterOptions {
  /** The pool's pinFor in ms (the config takes a duration). */
  pinForMs: number
  /** The accounts to make (default USERS, all 300). */
  users?: readonly MailUser[]
  /** Both proxies proxy LMTP too (the shipped files' optional lmtp_proxy), on ports.lmtp. */
  lmtpProxy?: boolean
}

/** Starts the cluster; everything is stopped by t's teardown, also when a later start fails. */
export async function startPoolCluster(t: Test, set: PeerSet, o: PoolClusterOptions): Promise<PoolCluster> {
  const secret = `pool-login-${randomBytes(9).toString('hex')}`
  const pg = await startPostgres({ set })
  t.teardown(() => pg.stop())
  // Doveadm's HTTP API on every member, so that move-user can kick the moved user's sessions.
  const doveadmKey = `doveadm-${randomBytes(9).toString('hex')}`
  const keyDir = await mkdtemp(join(tmpdir(), 'mailhostd-pool-key-'))
  t.teardown(() => rm(keyDir, { recursive: true, force: true }))
  const apiKeyFile = join(keyDir, 'doveadm.key')
  await writeFile(apiKeyFile, `${doveadmKey}\n`, { mode: 0o600 })
  const users = o.users ?? USERS
  const pool = await startSharedPool(t, { set, name: POOL, members: MEMBERS, users, doveadmApiKey: doveadmKey })
  const config = {
    domains: [{ name: 'example.org' }],
    backends: [
      {
        id: POOL,
        kind: 'pool',
        mailHosts: [`${POOL}.example.org`],
        route: 'lmtp',
        ports: { imap: pool.ports.imap, pop3: pool.ports.pop3, lmtp: pool.ports.lmtp },
        pinFor: `${o.pinForMs}ms`,
        members: MEMBERS.map((m) => ({ ...m })),
      },
    ],
    doveadm: { port: pool.ports.doveadm, apiKeyFile },
    directory: { type: 'sql' },
    store: { url: pg.url },
    // SSHA512: 300 accounts are created and every login is checked by mailhostd; the default
    // (ARGON2ID in SQL) would spend the test's time hashing.
    admin: { tokens: DEMO_TOKENS, passwordScheme: 'SSHA512' },
    login: { secret },
    health: { interval: `${HEALTH.intervalMs}ms`, timeout: `${HEALTH.timeoutMs}ms`, rise: HEALTH.rise, fall: HEALTH.fall },
  }
  // One after the other: the first migrates the store.
  const A = await startMailhostd(config)
  t.teardown(() => A.stop())
  const B = await startMailhostd(config)
  t.teardown(() => B.stop())
  const lmtpProxy = o.lmtpProxy === true
  const proxyA = await startDovecot({ set, role: 'proxy-lua', httpPort: A.ports.http, secret, lmtpProxy })
  t.teardown(() => proxyA.stop())
  const proxyB = await startDovecot({ set, role: 'proxy-lua', httpPort: B.ports.http, secret, lmtpProxy })
  t.teardown(() => proxyB.stop())
  const apiA = adminApi(A.ports.http)
  const apiB = adminApi(B.ports.http)

  await inBatches(users, 10, async (u) => {
    const r = await apiA.post('/v1/accounts', { address: u.user, backend: POOL, password: u.password })
    if (r.status !== 201) throw new Error(`creating ${u.user} on ${POOL}: ${r.status} ${JSON.stringify(r.body)}`)
  })
  return { set, pg, A, B, apiA, apiB, pool, proxyA, proxyB, pinForMs: o.pinForMs, users, secret }
}

/** Runs `each` over `items`, `width` at a time, in order of start. */
export async function inBatches<T, R>(items: readonly T[], width: number, each: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length)
  let next = 0
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await each(items[i]!, i)
  }
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker))
  return out
}

/** Where one login of each user through `proxy` landed: user -> member id, or `refused: <line>`. */
export async function landings(proxy: Dovecot, users: readonly string[], width = 8): Promise<Map<string, string>> {
  const where = await inBatches(users, width, async (u) => {
    const l = await landing(proxy.ports.imap, u, PASSWORD.get(u)!)
    return typeof l === 'string' ? l : `refused: ${l.refused}`
  })
  return new Map(users.map((u, i) => [u, where[i]!]))
}

/**
 * Where each user's logins landed through proxy A and, right after, through proxy B: the two
 * logins of one user are milliseconds apart, however long the whole run takes.
 */
export async function landingsThroughBoth(c: PoolCluster, users: readonly string[], width = 8): Promise<{ viaA: Map<string, string>; viaB: Map<string, string> }> {
  const one = async (proxy: Dovecot, u: string) => {
    const l = await landing(proxy.ports.imap, u, PASSWORD.get(u)!)
    return typeof l === 'string' ? l : `refused: ${l.refused}`
  }
  const pairs = await inBatches(users, width, async (u) => [await one(c.proxyA, u), await one(c.proxyB, u)] as const)
  return { viaA: new Map(users.map((u, i) => [u, pairs[i]![0]])), viaB: new Map(users.map((u, i) => [u, pairs[i]![1]])) }
}

/**
 * Looks every user up in instance A's transport map every `everyMs` until stopped, so that their
 * pins stay live however long the test's own login runs take on a loaded machine (a pin lives
 * pinFor after the user's last lookup, any protocol's). stop() resolves with the time the last
 * round of lookups ended.
 */
export function keepPinsLive(c: PoolCluster, users: readonly string[], everyMs: number): { stop(): Promise<number> } {
  let running = true
  let last = Date.now()
  const loop = (async () => {
    while (running) {
      await transportMembers(c, c.A, users)
      last = Date.now()
      const next = last + everyMs
      while (running && Date.now() < next) await new Promise((r) => setTimeout(r, 100))
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      return last
    },
  }
}

/**
 * The member each user's mail goes to, by `m`'s transport map over socketmap (postmap -q -, one
 * connection, as a long-lived Postfix process asks): the member whose address the route names.
 */
export async function transportMembers(c: PoolCluster, m: Mailhostd, users: readonly string[], map = 'transport'): Promise<Map<string, string>> {
  const r = await postmapBatch(socketmap(m.ports.socketmap, map), users, c.set)
  const out = new Map<string, string>()
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const [key, value] = line.split('\t') as [string, string]
    const m = /^lmtp:inet:\[([\d.]+)\]:(\d+)$/.exec(value)
    const member = m && Number(m[2]) === c.pool.ports.lmtp ? c.pool.memberAt(m[1]!) : undefined
    out.set(key, member ?? `not a member route: ${value}`)
  }
  return out
}

/** Users per member (members with none included, as 0). */
export function perMember(where: ReadonlyMap<string, string>): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(MEMBER_IDS.map((id) => [id, 0]))
  for (const m of where.values()) counts[m] = (counts[m] ?? 0) + 1
  return counts
}

/**
 * Whether `counts` (users per member, out of n) are within k standard deviations of what the
 * weights give: each member's count is binomial(n, weight / total weight). Returns the members
 * that are not, with their figures.
 */
export function outsideSigma(counts: Record<string, number>, weights: Record<string, number>, k = 5): string[] {
  const n = Object.values(counts).reduce((a, b) => a + b, 0)
  const total = Object.values(weights).reduce((a, b) => a + b, 0)
  const bad: string[] = []
  for (const [id, w] of Object.entries(weights)) {
    const p = w / total
    const mean = n * p
    const sigma = Math.sqrt(n * p * (1 - p))
    const got = counts[id] ?? 0
    if (Math.abs(got - mean) > k * sigma) bad.push(`${id}: ${got} users, expected ${mean.toFixed(1)} +- ${(k * sigma).toFixed(1)}`)
  }
  return bad
}

export const WEIGHTS: Record<string, number> = Object.fromEntries(MEMBERS.map((m) => [m.id, m.weight]))

/** The pool's status as an instance reports it (GET /v1/pools/:id). */
export interface PoolStatus {
  members: { id: string; address: string; weight: number; adminState: string; health: Record<string, string | { state: string }>; pins?: number; share?: number }[]
  pinFor?: unknown
}

/** The pool's status as `api`'s instance reports it. */
export async function poolStatus(api: AdminApi): Promise<PoolStatus> {
  const r = await api.get<PoolStatus>(`/v1/pools/${POOL}`)
  if (r.status !== 200) throw new Error(`GET /v1/pools/${POOL}: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body
}

/** A member's health on `api`'s instance: up when every probed service is up, down when one is, else the states seen. */
export async function memberState(api: AdminApi, member: string): Promise<string> {
  const status = await poolStatus(api)
  const m = status.members.find((x) => x.id === member)
  if (!m) throw new Error(`GET /v1/pools/${POOL} has no member ${member}: ${JSON.stringify(status)}`)
  const states = Object.values(m.health).map((h) => (typeof h === 'string' ? h : h.state))
  if (states.some((s) => s === 'down')) return 'down'
  if (states.length > 0 && states.every((s) => s === 'up')) return 'up'
  return states.join(',') || 'unknown'
}

/** Polls until `ok` holds; returns how long it took from `from`. Throws after `ms`. */
export async function within(what: string, ms: number, ok: () => Promise<boolean>, from = Date.now()): Promise<number> {
  for (;;) {
    if (await ok()) return Date.now() - from
    if (Date.now() - from > ms) throw new Error(`${what}: not within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/**
 * On how many of the two instances `member` is `state` (up: every probed service up; down: one
 * down), by their pool status; without the status endpoint, by the health records both instances
 * read from the store (2 when they say so).
 */
export async function healthOn(c: PoolCluster, member: string, state: 'up' | 'down'): Promise<number> {
  if ((await c.apiA.get(`/v1/pools/${POOL}`)).status === 404) {
    const client = new pg.Client({ connectionString: c.pg.url })
    await client.connect()
    try {
      const { rows } = await client.query<{ state: string }>('select state from backend_health where backend_id = $1', [member])
      const recorded = state === 'up' ? rows.length === 3 && rows.every((r) => r.state === 'up') : rows.some((r) => r.state === 'down')
      return recorded ? 2 : 0
    } finally {
      await client.end()
    }
  }
  const states = await Promise.all([c.apiA, c.apiB].map((api) => memberState(api, member)))
  return states.filter((s) => s === state).length
}

export const upOn = (c: PoolCluster, member: string) => healthOn(c, member, 'up')
export const downOn = (c: PoolCluster, member: string) => healthOn(c, member, 'down')
