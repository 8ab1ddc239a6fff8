// Issue 13's password hashing figures: cached socketmap lookups with no logins, then while 8 and
// while 32 Argon2id verifications are in flight (the SQL directory's default scheme and cost,
// m=19 MiB t=2), all against one daemon with the default pool (passwords.workers: one per
// core); then Argon2id verify throughput with 1 worker against the default pool. The checks
// run the right password (a wrong one costs the same hash but would trip the brakes, which stop
// hashing) from one client address. Run alone with BENCH_ONLY=passwords (bench/run.ts).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { hashPassword } from '../src/auth/passwords.js'
import { scrape } from '../test/ops/prom.js'
import type { Mailhostd } from '../test/harness/mailhostd.js'
import type { BenchConfig } from './config.js'
import { DEMO_SQL, LOGIN_SECRET, startDaemon } from './daemons.js'
import { passdbVerify, runHttpLoad, type HttpResult } from './http-load.js'
import { askOnce, runLoad, type LoadResult, type LoadTarget } from './load-generator.js'

/** Concurrent verifications the lookups are measured under. */
export const VERIFY_CONCURRENCY = [8, 32] as const
/** Concurrent verifications of the throughput runs: enough to keep any pool here busy. */
export const THROUGHPUT_CONNECTIONS = 32
const ARGON = { user: 'argon@example.org', password: 'bench-argon2id-password' } as const
/** Cached keys the lookups cycle through (the demo directory's mailboxes). */
const KEYS = ['alice@example.org', 'bob@example.org', 'alice.liddell@example.org', 'alice+tag@example.org', 'carol@example.org', ARGON.user]
const FOUND = /^OK /

export interface LookupsUnder {
  readonly verifications: number
  readonly lookups: LoadResult
  /** The verifications that ran meanwhile. */
  readonly verify: HttpResult
}

export interface HashingResult {
  /** Lookup connections (BENCH_CONNECTIONS), each with one request outstanding. */
  readonly connections: number
  readonly idle: LoadResult
  readonly under: readonly LookupsUnder[]
  /** passwords.workers: 0 resolved on this machine. */
  readonly defaultWorkers: number
  readonly throughputConnections: number
  readonly throughput: readonly { readonly workers: number; readonly verify: HttpResult }[]
}

export async function passwordHashingBench(cfg: BenchConfig, log: (line: string) => void): Promise<HashingResult> {
  const work = mkdtempSync(join(tmpdir(), 'mailhostd-bench-hashing-'))
  try {
    const seed = join(work, 'argon.sql')
    writeFileSync(
      seed,
      `insert into accounts (address, mailhost, status, password_hash) values ('${ARGON.user}', 'mx1.example.org', 'active', '${await hashPassword(ARGON.password, 'ARGON2ID')}') on conflict (address) do nothing;\n`,
    )
    const start = (workers: number) => startDaemon({ type: 'sql' }, { seedSql: [DEMO_SQL, seed], config: { passwords: { workers } } })
    const load = (m: Mailhostd) => passdbVerify(m.ports.http, LOGIN_SECRET, ARGON.user, ARGON.password)
    const bounds = { durationMs: cfg.seconds * 1000, maxRequests: cfg.maxRequests }
    // autocannon compares whole bodies: the answer to one check made outside the load.
    const verifyLoad = async (m: Mailhostd) => {
      const l = load(m)
      const expectBody = await (await fetch(l.url, { method: l.method, headers: l.headers, body: l.body! })).text()
      if (!expectBody.includes('"result":"ok"')) throw new Error(`the Argon2id login is not routed: ${expectBody}`)
      return { ...l, expectBody }
    }

    const m = await start(0)
    let idle: LoadResult
    const under: LookupsUnder[] = []
    let pooled: HttpResult
    try {
      const target: LoadTarget = { port: m.ports.socketmap, proto: 'socketmap', map: 'transport' }
      for (const k of KEYS) if (!FOUND.test(await askOnce(target, k))) throw new Error(`${k} is not found: the bench would time a failure path`)
      const lookups = () => runLoad(target, { ...bounds, connections: cfg.connections, keys: KEYS, expect: FOUND })
      idle = await lookups()
      log(`password hashing: idle cached lookups, ${cfg.connections} connections: p99 ${idle.p99.toFixed(2)} ms, ${Math.round(idle.rps)} lookups/s`)
      for (const n of VERIFY_CONCURRENCY) {
        const stop = new AbortController()
        // Bounded by the lookups' run (it is stopped after them) and, should that hang, by time.
        const verifying = runHttpLoad(await verifyLoad(m), { connections: n, durationMs: bounds.durationMs * 4 + 30_000, maxRequests: cfg.maxRequests, signal: stop.signal })
        // Measure once checks wait for a worker: every worker is busy (n is above the pool size).
        await until(async () => (await waiting(m)) > 0)
        const r = await lookups()
        stop.abort()
        const verify = await verifying
        // Requests autocannon left in flight are still checked: let the queue drain first.
        await until(async () => (await waiting(m)) === 0)
        under.push({ verifications: n, lookups: r, verify })
        log(`password hashing: cached lookups while ${n} Argon2id verifications run: p99 ${r.p99.toFixed(2)} ms (${(r.p99 / idle.p99).toFixed(2)}x idle), ${Math.round(r.rps)} lookups/s; ${Math.round(verify.rps)} verifications/s`)
      }
      pooled = await runHttpLoad(await verifyLoad(m), { ...bounds, connections: THROUGHPUT_CONNECTIONS })
      log(`password hashing: Argon2id verify, default pool (${availableParallelism()} workers): ${Math.round(pooled.rps)} req/s, p99 ${pooled.p99} ms`)
    } finally {
      await m.stop()
    }
    const one = await start(1)
    let single: HttpResult
    try {
      single = await runHttpLoad(await verifyLoad(one), { ...bounds, connections: THROUGHPUT_CONNECTIONS })
      log(`password hashing: Argon2id verify, 1 worker: ${Math.round(single.rps)} req/s, p99 ${single.p99} ms`)
    } finally {
      await one.stop()
    }
    return {
      connections: cfg.connections,
      idle,
      under,
      defaultWorkers: availableParallelism(),
      throughputConnections: THROUGHPUT_CONNECTIONS,
      throughput: [
        { workers: 1, verify: single },
        { workers: availableParallelism(), verify: pooled },
      ],
    }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

/** Password jobs waiting for a worker in the daemon's pool. */
async function waiting(m: Mailhostd): Promise<number> {
  return (await scrape(m.ports.http)).value('mailhostd_password_jobs_waiting')
}

async function until(condition: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('password hashing bench: the pool did not reach the expected state within 60 s')
    await new Promise((r) => setTimeout(r, 50))
  }
}
