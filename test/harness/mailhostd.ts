// Runs the real program (`node dist/main.js`) for end-to-end tests. Listeners are configured on
// port 0 and the bound ports are read back from the "mailhostd ready" log line, so parallel
// test files never race for ports. Also: `postmap -q` against it, the way Postfix asks.

import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { stringify } from 'yaml'
import { start, type RunResult, type Started } from './process.js'
import { DEBIAN12_SET, type PeerSet } from './peer-set.js'
import { seedDataDir } from './pglite-template.js'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
export const MAIN = join(ROOT, 'dist/main.js')
export const CTL = join(ROOT, 'dist/cli/mailhostctl.js')

export interface Ports {
  socketmap: number
  transport: number
  recipient: number
  http: number
  policy: number
  /** Every bound listener by name (`tcp_table <map>` for extra tcp_table maps). */
  byName: Record<string, number>
}

export interface Mailhostd {
  readonly proc: Started
  readonly pid: number
  readonly ports: Ports
  readonly dir: string
  /** Parsed JSON log lines so far. */
  logs(): Record<string, unknown>[]
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

/** Fails when dist/ is missing or older than src/ (npm test builds it in pretest). */
function assertBuilt(): void {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` (npm test does it in pretest)`)
  const built = statSync(MAIN).mtimeMs
  const newest = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
      const p = join(dir, e.name)
      return Math.max(m, e.isDirectory() ? newest(p) : statSync(p).mtimeMs)
    }, 0)
  if (newest(join(ROOT, 'src')) > built + 1000) throw new Error('dist/ is older than src/: run `npm run build`')
}

/**
 * Starts mailhostd with `config` merged over test defaults (all listeners on 127.0.0.1:0,
 * data in a temp dir, debug logs, no backend health checks). Pass `configPath` instead to run
 * with a ready file.
 */
export async function startMailhostd(
  config: Record<string, unknown> = {},
  opts: { env?: NodeJS.ProcessEnv; args?: string[]; timeoutMs?: number; nodeArgs?: string[] } = {},
): Promise<Mailhostd> {
  assertBuilt()
  const dir = mkdtempSync(join(tmpdir(), 'mailhostd-test-'))
  const full = {
    dataDir: join(dir, 'data'),
    log: { level: 'debug' },
    // Most tests' backends are example addresses or smtp-sinks without IMAP and POP3: probes would
    // mark them down mid-test. Tests of the health checks turn them on.
    health: { interval: 0 },
    ...config,
    listen: {
      socketmap: { host: '127.0.0.1', port: 0 },
      tcpTable: [
        { map: 'transport', port: 0 },
        { map: 'recipient', port: 0 },
      ],
      http: { host: '127.0.0.1', port: 0 },
      policy: { host: '127.0.0.1', port: 0 },
      ...((config.listen as object | undefined) ?? {}),
    },
  }
  // The embedded store starts as a copy of a migrated one, unless the test names its own data
  // directory (restarts on one store) or a PostgreSQL store.
  const store = config.store as { url?: unknown } | undefined
  if (config.dataDir === undefined && store?.url === undefined) await seedDataDir(ROOT, full.dataDir)
  const configPath = join(dir, 'mailhostd.yaml')
  writeFileSync(configPath, stringify(full))
  // nodeArgs go before the script: flags Node refuses in NODE_OPTIONS, such as --cpu-prof.
  const proc = start(process.execPath, [...(opts.nodeArgs ?? []), MAIN, '--config', configPath, ...(opts.args ?? [])], {
    env: { ...process.env, ...opts.env },
    cwd: dir,
  })
  // A bound, not an expectation: it starts in about a second, but on a loaded 2-core machine
  // (two test files, each with its peers) 30 s was seen to pass with mailhostd still starting.
  const ready = await waitForReady(proc, opts.timeoutMs ?? 90_000)
  const byName: Record<string, number> = {}
  for (const l of ready) byName[l.name] = l.port
  return {
    proc,
    pid: proc.pid,
    dir,
    ports: {
      socketmap: byName.socketmap ?? 0,
      transport: byName['tcp_table transport'] ?? 0,
      recipient: byName['tcp_table recipient'] ?? 0,
      http: byName.http ?? 0,
      policy: byName.policy ?? 0,
      byName,
    },
    logs: () => parseLogs(proc.output()),
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      await proc.stop(signal, 15_000)
      const code = await proc.exited
      rmSync(dir, { recursive: true, force: true })
      return code
    },
  }
}

export function parseLogs(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>]
      } catch {
        return []
      }
    })
}

async function waitForReady(proc: Started, timeoutMs: number): Promise<{ name: string; port: number }[]> {
  const deadline = Date.now() + timeoutMs
  let exited = false
  void proc.exited.then(() => (exited = true))
  while (Date.now() < deadline) {
    const line = parseLogs(proc.output()).find((l) => l.msg === 'mailhostd ready')
    if (line) return line.listeners as { name: string; port: number }[]
    if (exited) throw new Error(`mailhostd exited before it was ready:\n${proc.output()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  await proc.stop('SIGKILL')
  throw new Error(`mailhostd not ready after ${timeoutMs} ms:\n${proc.output()}`)
}

let postmapDir: string | undefined
function postmapConfigDir(): string {
  if (!postmapDir) {
    postmapDir = mkdtempSync(join(tmpdir(), 'mailhostd-postmap-'))
    writeFileSync(join(postmapDir, 'main.cf'), '# empty: postmap -q needs only the map argument\n')
  }
  return postmapDir
}

/**
 * `postmap -q KEY MAP` with a throwaway (empty) Postfix config dir; exit 0 found, 1 not. From
 * Debian 12's Postfix unless `set` names another.
 */
export async function postmapQuery(map: string, key: string, set: PeerSet = DEBIAN12_SET): Promise<RunResult> {
  return set.run('postmap', ['-c', postmapConfigDir(), '-q', key, map], { timeoutMs: 30_000 })
}

/** `postmap -q - MAP`: many keys over one connection; prints `key<TAB>value` per found key. */
export async function postmapBatch(map: string, keys: readonly string[], set: PeerSet = DEBIAN12_SET): Promise<RunResult> {
  return set.run('postmap', ['-c', postmapConfigDir(), '-q', '-', map], { input: `${keys.join('\n')}\n`, timeoutMs: 30_000 })
}

export const socketmap = (port: number, map: string) => `socketmap:inet:127.0.0.1:${port}:${map}`
export const tcp = (port: number) => `tcp:127.0.0.1:${port}`
