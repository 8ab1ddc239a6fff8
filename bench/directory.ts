// The generated directory every bench scenario draws its keys from: N accounts in the demo
// domain, as LDIF for slapd and as SQL for the store, holding the same accounts so LDAP and SQL
// runs answer the same keys the same way. Accounts are split into disjoint ranges so a key
// meant to be cold (miss path, coalescing) was never asked by an earlier scenario.

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

export const DOMAIN = 'example.org'
/** When the generated entries claim to have been written (LDAP GeneralizedTime). */
const LOADED_AT = '20260101000000Z'
const BASE_DN = 'dc=example,dc=org'

/** The mailHost of account i; alternating over the demo's two backends. */
export const mailHostOf = (i: number) => (i % 2 === 0 ? 'mx1.example.org' : 'mx2.example.org')
export const accountAddress = (i: number) => `user${i}@${DOMAIN}`
export const isAccountKey = (key: string) => key.startsWith('user')
/** Unknown address in a served domain: an authoritative miss costing one directory query. */
export const unknownAddress = (j: number) => `nobody${j}@${DOMAIN}`

export interface GeneratedDirectory {
  readonly accounts: number
  /** Accounts [0, warm) are the pool of the mixed and cached runs and the Postfix comparison. */
  readonly warm: number
  /** Accounts [warm, accounts): never asked before the miss-path and coalescing scenarios. */
  coldKeys(): Generator<string>
  ldif(): string
  /** Writes the SQL seed into dir and returns its path (for mailhostd --seed-sql). */
  writeSql(dir: string): string
}

/**
 * `reserved` accounts at the end stay cold for the scenarios that need never-asked keys;
 * everything before them is the warm pool.
 */
export function generateDirectory(accounts: number, reserved: number): GeneratedDirectory {
  if (reserved >= accounts) throw new Error(`BENCH_ACCOUNTS (${accounts}) must exceed the ${reserved} keys kept cold`)
  const warm = accounts - reserved
  return {
    accounts,
    warm,
    *coldKeys() {
      for (let i = warm; i < accounts; i++) yield accountAddress(i)
    },
    ldif() {
      const out: string[] = []
      for (let i = 0; i < accounts; i++) {
        // The shape of the demo entries (fixtures/ldap/demo.ldif), without a password.
        out.push(
          `dn: uid=user${i},ou=people,${BASE_DN}`,
          'objectClass: inetOrgPerson',
          'objectClass: inetLocalMailRecipient',
          'objectClass: mailhostdAccount',
          `uid: user${i}`,
          `cn: User ${i}`,
          `sn: ${i}`,
          `mail: ${accountAddress(i)}`,
          `mailLocalAddress: ${accountAddress(i)}`,
          `mailHost: ${mailHostOf(i)}`,
          'mailhostdAccountStatus: active',
          // Stamped long ago, as in a directory that was not bulk-loaded minutes before the
          // daemon started: mailhostd's change watcher reaches 5 minutes back on its first poll
          // and would report every fresh entry as changed, flushing the cache mid-run.
          `createTimestamp: ${LOADED_AT}`,
          `modifyTimestamp: ${LOADED_AT}`,
          '',
        )
      }
      return out.join('\n')
    },
    writeSql(dir) {
      const file = join(dir, 'bench-accounts.sql')
      // Set-based: one statement instead of N inserts keeps the daemon's start-up short.
      writeFileSync(
        file,
        `insert into accounts (address, mailhost, status)
  select 'user' || i || '@${DOMAIN}', case when i % 2 = 0 then 'mx1.example.org' else 'mx2.example.org' end, 'active'
    from generate_series(0, ${accounts - 1}) as i
on conflict (address) do nothing;
`,
      )
      return file
    },
  }
}

/** A small deterministic PRNG (mulberry32), so every run asks the same keys in the same order. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export interface KeyDeck {
  /** Distinct keys in asking order (shuffled); a load run cycles through them. */
  readonly keys: readonly string[]
  readonly hits: number
  readonly misses: number
}

/**
 * Every warm account once plus enough unknown addresses to make `hitRatio` of the deck exist,
 * shuffled. The first pass over a deck is all cache misses, every later pass all cache hits.
 */
export function keyDeck(dir: GeneratedDirectory, hitRatio: number, limit = dir.warm, seed = 7): KeyDeck {
  const hits = Math.min(limit, dir.warm)
  const misses = hitRatio >= 1 ? 0 : Math.round((hits * (1 - hitRatio)) / hitRatio)
  const keys: string[] = []
  for (let i = 0; i < hits; i++) keys.push(accountAddress(i))
  for (let j = 0; j < misses; j++) keys.push(unknownAddress(j))
  const rnd = prng(seed)
  for (let i = keys.length - 1; i > 0; i--) {
    const k = Math.floor(rnd() * (i + 1))
    ;[keys[i], keys[k]] = [keys[k]!, keys[i]!]
  }
  return { keys, hits, misses }
}
