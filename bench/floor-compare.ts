// The floor comparison of `npm run bench` alone, for measuring a change to the cached-hit path
// in a minute rather than the whole bench's four: mailhostd (SQL on PGlite, the generated
// directory; cached hits do not reach the directory, so which one does not matter) against the
// constant-answer floor server, same generator, connections and keys (all hits, all cached).
// The two sides alternate for BENCH_FLOOR_ROUNDS rounds (default 3) and each side's median is
// reported, as the Postfix comparison does: single runs swing on a shared machine.
//   npm run build && node --import=@tapjs/typescript/import bench/floor-compare.ts
// Knobs: bench/config.ts (BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_ACCOUNTS).

import { mkdtempSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { benchConfig } from './config.js'
import { DEMO_SQL, startDaemon } from './daemons.js'
import { generateDirectory, isAccountKey, keyDeck } from './directory.js'
import { startFloor } from './floor.js'
import { runLoad, type LoadResult } from './load-generator.js'

const FOUND = /^OK /
const cfg = benchConfig()
const rounds = Number(process.env.BENCH_FLOOR_ROUNDS ?? 3)
const log = (line: string) => process.stderr.write(`${line}\n`)
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

async function main(): Promise<void> {
  const dir = generateDirectory(cfg.accounts, cfg.missKeys)
  const hits = keyDeck(dir, 1).keys.filter(isAccountKey)
  const work = mkdtempSync(join(tmpdir(), 'mailhostd-floor-'))
  log(`load at start ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${hits.length} keys, ${cfg.connections} connections, ${cfg.seconds} s per run, ${rounds} rounds`)
  const m = await startDaemon({ type: 'sql' }, { seedSql: [DEMO_SQL, dir.writeSql(work)] })
  const bounded = { durationMs: cfg.seconds * 1000, maxRequests: cfg.maxRequests, connections: cfg.connections, keys: hits, expect: FOUND }
  const ours: number[] = []
  const floors: number[] = []
  const check = (who: string, r: LoadResult) => {
    log(`${who}: ${Math.round(r.rps)} lookups/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms${r.unexpected ? `, ${r.unexpected} unexpected (${r.sample})` : ''}`)
    if (r.unexpected) throw new Error(`${who}: unexpected replies`)
    return r.rps
  }
  try {
    const warm = await runLoad({ port: m.ports.socketmap, proto: 'socketmap', map: 'transport' }, { ...bounded, durationMs: 60_000, maxRequests: hits.length })
    log(`warmed ${warm.requests} of ${hits.length} keys`)
    for (let i = 0; i < rounds; i++) {
      const floor = await startFloor()
      try {
        floors.push(check('floor', await runLoad({ port: floor.port, proto: 'socketmap', map: 'transport' }, bounded)))
      } finally {
        await floor.stop()
      }
      ours.push(check('mailhostd cached hits', await runLoad({ port: m.ports.socketmap, proto: 'socketmap', map: 'transport' }, bounded)))
    }
  } finally {
    await m.stop()
    rmSync(work, { recursive: true, force: true })
  }
  const f = median(floors)
  const o = median(ours)
  log(`median: mailhostd ${Math.round(o)} lookups/s, floor ${Math.round(f)} lookups/s: ${((o / f) * 100).toFixed(0)} % of the floor; load at end ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
}

main().catch((e: unknown) => {
  process.stderr.write(`floor comparison failed: ${e instanceof Error ? e.stack : String(e)}\n`)
  process.exit(1)
})
