// The "scale" comparison of `npm run bench` (issue 7): a generated directory of a million
// accounts (BENCH_SCALE_ACCOUNTS) loaded into a throwaway slapd with slapadd, mailhostd started
// on it with cache.warmup, then:
// - how long the warm-up takes (its own final log line);
// - what the whole set costs in memory: the daemon's VmRSS after a full GC, minus the same
//   figure for the same daemon started without warm-up, divided by the cached entries;
// - lookups/s and latency over random keys from the whole set at 50 connections, every
//   reply checked, with the number of directory queries the load caused (0 when all is cached).
// Run alone: `npm run build && node --import=@tapjs/typescript/import bench/scale.ts`.

import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { startMailhostd, type Mailhostd } from '../test/harness/mailhostd.js'
import { startSlapd, type Slapd } from '../test/harness/slapd.js'
import { mailboxAddressCount, randomKey, scaleClusterConfig, writeScaleLdif } from './scale-directory.js'
import { askOnce, runLoad, type LoadResult } from './load-generator.js'

export interface ScaleOptions {
  /** Accounts in the generated directory. */
  readonly accounts: number
  /** Load connections (one outstanding request each). Default 50. */
  readonly connections?: number
  /** Duration of the load run, in seconds. Default 10. */
  readonly seconds?: number
  /** Distinct random keys the load cycles through. Default 300,000. */
  readonly keys?: number
  /** Progress lines go here (phase timings). Default: stderr. */
  readonly log?: (line: string) => void
}

/** Everything the scale run measured. Seconds are wall-clock; bytes are bytes. */
export interface ScaleResult {
  readonly accounts: number
  /** Addresses of mailbox entries, which the warm-up loads (accounts plus their second addresses). */
  readonly mailboxAddresses: number
  /** Size of the generated LDIF. */
  readonly ldifBytes: number
  /** Writing the LDIF. */
  readonly generateSeconds: number
  /** slapadd -q of demo.ldif and the generated LDIF, and slapd's start. */
  readonly slapaddSeconds: number
  /** From the daemon's start to its `cache warm-up: done` line, as that line reports it. */
  readonly warmupSeconds: number
  /** What the warm-up's final line counted. */
  readonly warmup: { readonly total: number; readonly loaded: number; readonly skipped: number; readonly failed: number }
  /** Daemon VmRSS after a full GC, started with the same configuration but no warm-up. */
  readonly rssBeforeBytes: number
  /** Daemon VmRSS after a full GC, after the warm-up. */
  readonly rssAfterBytes: number
  /** V8 heap in use after the GC, without and with the warm-up: the part of RSS the entries are. */
  readonly heapUsedBeforeBytes: number
  readonly heapUsedAfterBytes: number
  /** VmRSS after the load run, a 3 s pause and a full GC: the steady state. */
  readonly rssAfterLoadBytes: number
  /** (rssAfterLoad - rssBefore) / cacheEntries. */
  readonly rssBytesPerEntryAfterLoad: number
  /** mailhostd_cache_entries after the warm-up. */
  readonly cacheEntries: number
  /** (rssAfter - rssBefore) / cacheEntries: the figure the <= 400 bytes target is about. */
  readonly rssBytesPerEntry: number
  /** (heapUsedAfter - heapUsedBefore) / cacheEntries. */
  readonly heapBytesPerEntry: number
  readonly load: LoadResult & { readonly connections: number; readonly distinctKeys: number }
  /** Keys asked one by one before the load whose reply was not exactly the expected route (must be 0). */
  readonly wrongAnswers: number
  /** Directory queries (lookups answered by layer="directory") during the load run: 0 when the whole set was cached. */
  readonly directoryLookupsDuringLoad: number
  /** The target of issue 7 and whether it was met. */
  readonly target: { readonly rssBytesPerEntry: 400; readonly met: boolean }
  /** Wall-clock seconds of each phase, in order. */
  readonly phases: Readonly<Record<string, number>>
}

/** Every generated account lives on one of four LMTP backends (scale-directory.ts). */
const ROUTE = /^OK lmtp:inet:\[10\.0\.0\.1[1-4]\]:24$/
const SETTLE_MS = 10_000
const GC_PRELOAD = fileURLToPath(new URL('./gc-on-signal.mjs', import.meta.url))

export async function scaleBench(opts: ScaleOptions): Promise<ScaleResult> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`))
  const connections = opts.connections ?? 50
  const seconds = opts.seconds ?? 10
  const phases: Record<string, number> = {}
  const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now()
    const out = await fn()
    phases[name] = round((performance.now() - t0) / 1000, 2)
    log(`scale: ${name}: ${phases[name]} s`)
    return out
  }

  const dir = await mkdtemp(join(tmpdir(), 'mailhostd-scale-'))
  let slapd: Slapd | undefined
  let daemon: Mailhostd | undefined
  try {
    const ldif = join(dir, 'accounts.ldif')
    await phase('generate LDIF', () => writeScaleLdif(ldif, opts.accounts))
    const ldifBytes = (await stat(ldif)).size
    slapd = await phase('slapadd and start slapd', () =>
      startSlapd({
        ldifFiles: [ldif],
        // About 1.5 KiB of mdb per account with the indexes; room to spare.
        mapSize: Math.max(64 * 2 ** 20, opts.accounts * 4096),
        serviceUnlimited: true,
        loadTimeoutMs: 20 * 60_000,
      }),
    )
    await rm(ldif)

    const addresses = mailboxAddressCount(opts.accounts)
    const config = {
      ...scaleClusterConfig(),
      log: { level: 'info' },
      directory: {
        type: 'ldap',
        ldap: { url: slapd.url, bindDN: slapd.bindDN, bindPassword: slapd.bindPassword, baseDN: slapd.baseDN, connections: 4, pollInterval: 0 },
      },
      // Room for every address (and the demo's), and no expiry while the benchmark runs.
      cache: { warmup: true, maxEntries: addresses + 10_000, ttl: '1h' },
    }
    const env = { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --expose-gc --import=${GC_PRELOAD}`.trim() }

    // The baseline: the same daemon and configuration (its cache's slot arrays, sized by
    // maxEntries, included) without the warm-up. Measuring the warm daemon at "ready" instead
    // would race its listing, which starts right then.
    const before = await phase('baseline daemon (no warm-up)', async () => {
      const d = await startMailhostd({ ...config, cache: { ...config.cache, warmup: false } }, { env, timeoutMs: 120_000 })
      try {
        return await memoryAfterGc(d)
      } finally {
        await d.stop()
      }
    })
    const warmStart = performance.now()
    daemon = await startMailhostd(config, { env, timeoutMs: 120_000 })
    log(`scale: daemon ready: ${round((performance.now() - warmStart) / 1000, 2)} s`)
    const done = await phase('warm-up', () => waitForLine(daemon!, (l) => typeof l.msg === 'string' && l.msg.startsWith('cache warm-up: done'), 30 * 60_000))
    log(`scale: warm-up from daemon start: ${round((performance.now() - warmStart) / 1000, 2)} s`)
    // V8 keeps giving back the warm-up's spare heap for a few seconds after a burst that size;
    // the figures are meant for the settled state, as a daemon is in before the traffic comes.
    const after = await phase('settle, GC and RSS', async () => {
      await new Promise((r) => setTimeout(r, SETTLE_MS))
      return memoryAfterGc(daemon!)
    })
    const metricsBefore = await metrics(daemon)
    const cacheEntries = metricsBefore.entries

    const target = { port: daemon.ports.socketmap, proto: 'socketmap' as const, map: 'transport' }
    // The load checks the kind of each reply; these check the exact route of a sample.
    let wrongAnswers = 0
    for (let n = 0; n < 500; n++) {
      const { key, route } = randomKey(opts.accounts)
      if ((await askOnce(target, key)) !== `OK ${route}`) wrongAnswers++
    }
    const keys = Array.from({ length: opts.keys ?? 300_000 }, () => randomKey(opts.accounts).key)
    const load = await phase('load', () =>
      runLoad(target, { connections, durationMs: seconds * 1000, maxRequests: Number.MAX_SAFE_INTEGER, keys, expect: ROUTE }),
    )
    const metricsAfter = await metrics(daemon)
    // Steady state: after traffic, a pause for V8 to give back the warm-up's spare heap pages.
    await new Promise((r) => setTimeout(r, 3000))
    const afterLoad = await memoryAfterGc(daemon)
    await phase('stop', async () => {
      await daemon!.stop()
      daemon = undefined
      await slapd!.stop()
      slapd = undefined
    })

    const rssBytesPerEntry = Math.round((after.rss - before.rss) / Math.max(1, cacheEntries))
    const result: ScaleResult = {
      accounts: opts.accounts,
      mailboxAddresses: addresses,
      ldifBytes,
      generateSeconds: phases['generate LDIF']!,
      slapaddSeconds: phases['slapadd and start slapd']!,
      warmupSeconds: Number(done.seconds),
      warmup: { total: Number(done.total), loaded: Number(done.loaded), skipped: Number(done.skipped), failed: Number(done.failed) },
      rssBeforeBytes: before.rss,
      rssAfterBytes: after.rss,
      heapUsedBeforeBytes: before.heapUsed,
      heapUsedAfterBytes: after.heapUsed,
      cacheEntries,
      rssBytesPerEntry,
      rssAfterLoadBytes: afterLoad.rss,
      rssBytesPerEntryAfterLoad: Math.round((afterLoad.rss - before.rss) / Math.max(1, cacheEntries)),
      heapBytesPerEntry: Math.round((after.heapUsed - before.heapUsed) / Math.max(1, cacheEntries)),
      load: { ...load, connections, distinctKeys: keys.length },
      wrongAnswers,
      directoryLookupsDuringLoad: metricsAfter.directoryLookups - metricsBefore.directoryLookups,
      target: { rssBytesPerEntry: 400, met: rssBytesPerEntry <= 400 },
      phases,
    }
    return result
  } finally {
    await daemon?.stop().catch(() => undefined)
    await slapd?.stop().catch(() => undefined)
    await rm(dir, { recursive: true, force: true })
  }
}

/** Asks the preloaded gc-on-signal.mjs for a full GC, then reads VmRSS from /proc. */
async function memoryAfterGc(d: Mailhostd): Promise<{ rss: number; heapUsed: number }> {
  const seen = countLines(d, (l) => l.msg === 'bench gc')
  process.kill(d.pid, 'SIGUSR2')
  const line = await waitForLine(d, (l) => l.msg === 'bench gc', 60_000, seen)
  // Let the kernel settle the freed pages before reading.
  await new Promise((r) => setTimeout(r, 200))
  const status = await readFile(`/proc/${d.pid}/status`, 'utf8')
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)
  if (!kb) throw new Error(`no VmRSS in /proc/${d.pid}/status`)
  if (process.env.BENCH_SCALE_DEBUG) process.stderr.write(`${JSON.stringify(line)}\n`)
  return { rss: Number(kb[1]) * 1024, heapUsed: Number(line.heapUsed) }
}

function countLines(d: Mailhostd, match: (l: Record<string, unknown>) => boolean): number {
  return d.logs().filter(match).length
}

/** The first log line matching `match` after the first `skip` such lines. */
async function waitForLine(d: Mailhostd, match: (l: Record<string, unknown>) => boolean, timeoutMs: number, skip = 0): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const line = d.logs().filter(match)[skip]
    if (line) return line
    if (Date.now() > deadline) throw new Error(`no matching log line within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

/** Cache entries and directory-answered lookups, from the daemon's /metrics. */
async function metrics(d: Mailhostd): Promise<{ entries: number; directoryLookups: number }> {
  const text = await (await fetch(`http://127.0.0.1:${d.ports.http}/metrics`)).text()
  const entries = Number(/^mailhostd_cache_entries (\S+)$/m.exec(text)?.[1] ?? NaN)
  let directoryLookups = 0
  for (const m of text.matchAll(/^mailhostd_lookups_total\{([^}]*)\} (\S+)$/gm)) {
    if (m[1]!.includes('layer="directory"')) directoryLookups += Number(m[2])
  }
  return { entries, directoryLookups }
}

const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const accounts = Number(process.env.BENCH_SCALE_ACCOUNTS ?? 1_000_000)
  scaleBench({ accounts })
    .then((r) => process.stdout.write(`${JSON.stringify(r, null, 2)}\n`))
    .catch((e: unknown) => {
      process.stderr.write(`scale bench failed: ${e instanceof Error ? e.stack : String(e)}\n`)
      process.exit(1)
    })
}
