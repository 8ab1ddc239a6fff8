// The cluster and accounts of the pooled-lookups bench (bench/pooled-lookups.ts): the demo's
// plain backends plus one pool of three members, and accounts split evenly between the plain
// backend mx1 and the pool, so a pooled and a plain key differ only in where their mailHost
// points. Member addresses have the same length as mx1's, so both answers are the same size.

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { accountAddress, DOMAIN, prng } from './directory.js'

export const POOL_ID = 'pool1'
export const POOL_MAIL_HOST = 'pool1.example.org'
export const PLAIN_MAIL_HOST = 'mx1.example.org'
/** The demo's mx1 route (fixtures/demo/mailhostd.yaml). */
export const PLAIN_ROUTE = 'lmtp:inet:[10.0.0.11]:24'
/**
 * Example addresses like the demo's: the daemon runs with health.interval 0 (the demo's), so
 * nothing ever connects to them.
 */
export const POOL_MEMBERS = [
  { id: 'pm1', address: '10.0.0.21' },
  { id: 'pm2', address: '10.0.0.22' },
  { id: 'pm3', address: '10.0.0.23' },
] as const

/** The pool as a `backends:` entry (docs/pools.md), members of equal weight. */
export function poolBackend(): Record<string, unknown> {
  return { id: POOL_ID, kind: 'pool', mailHosts: [POOL_MAIL_HOST], route: 'lmtp', members: POOL_MEMBERS.map((m) => ({ ...m, weight: 1 })) }
}

/** Account i is pooled when odd, on the plain backend when even. */
export const isPooledAccount = (i: number) => i % 2 === 1

/** What a found transport answer of either kind looks like, per protocol. */
export function routeReply(proto: 'socketmap' | 'tcp_table', pooled: boolean): RegExp {
  const status = proto === 'socketmap' ? 'OK' : '200'
  const route = pooled ? `lmtp:inet:\\[(?:${POOL_MEMBERS.map((m) => m.address.replaceAll('.', '\\.')).join('|')})\\]:24` : PLAIN_ROUTE.replace(/[[\].]/g, (c) => `\\${c}`)
  return new RegExp(`^${status} ${route}$`)
}

/** Writes the accounts into dir as a --seed-sql file and returns its path. */
export function writePoolAccountsSql(dir: string, accounts: number): string {
  const file = join(dir, 'bench-pool-accounts.sql')
  writeFileSync(
    file,
    `insert into accounts (address, mailhost, status)
  select 'user' || i || '@${DOMAIN}', case when i % 2 = 1 then '${POOL_MAIL_HOST}' else '${PLAIN_MAIL_HOST}' end, 'active'
    from generate_series(0, ${accounts - 1}) as i
on conflict (address) do nothing;
`,
  )
  return file
}

export interface PoolKeys {
  /** Accounts on the plain backend, shuffled. */
  readonly plain: readonly string[]
  /** Accounts on the pool, shuffled. */
  readonly pooled: readonly string[]
}

/** Both halves' addresses, each in a fixed shuffled order (one seed per run: the same keys in the same order). */
export function poolKeys(accounts: number, seed = 15): PoolKeys {
  const plain: string[] = []
  const pooled: string[] = []
  for (let i = 0; i < accounts; i++) (isPooledAccount(i) ? pooled : plain).push(accountAddress(i))
  const rnd = prng(seed)
  for (const keys of [plain, pooled]) {
    for (let i = keys.length - 1; i > 0; i--) {
      const k = Math.floor(rnd() * (i + 1))
      ;[keys[i], keys[k]] = [keys[k]!, keys[i]!]
    }
  }
  return { plain, pooled }
}
