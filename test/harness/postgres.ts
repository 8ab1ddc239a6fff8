// A throwaway PostgreSQL for tests: initdb into a temp dir, the server in the foreground so the
// harness owns its PID, password auth on 127.0.0.1 only. Never touches the system's clusters.

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, chownSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { freePort } from './ports.js'
import { type Started } from './process.js'
import { DEBIAN12_SET, type PeerSet } from './peer-set.js'

export interface Pg {
  readonly set: PeerSet
  /** The server's major version (15 on Debian 12, 17 on Debian 13). */
  readonly version: number
  /** postgres://postgres:<password>@127.0.0.1:<port>/mailhostd */
  readonly url: string
  readonly port: number
  /** The superuser's password; tests use it to prove it never reaches a log. */
  readonly password: string
  /** The postmaster's PID; changes on restart(). */
  readonly pid: number
  /** Fast shutdown (SIGINT): sessions are disconnected, data kept for restart(). */
  stop(): Promise<void>
  /** A crash: SIGKILL to the postmaster and every backend. */
  kill(): Promise<void>
  /** Starts the same cluster again on the same port (stopping it first if it runs). */
  restart(): Promise<void>
  /** Creates another empty database on this server (for tests that need a blank schema); returns its URL. */
  createDatabase(name: string): Promise<string>
}

const DATABASE = 'mailhostd'
const READY_TIMEOUT_MS = 30_000

/** The highest installed major version of the set, and its binaries (e.g. /usr/lib/postgresql/15/bin, a path in the set). */
export function postgresBin(set: PeerSet = DEBIAN12_SET): { version: number; bin: string } {
  const root = '/usr/lib/postgresql'
  const host = set.path(root)
  const versions = existsSync(host)
    ? readdirSync(host)
        .filter((v) => /^\d+$/.test(v) && existsSync(join(host, v, 'bin', 'postgres')))
        .sort((a, b) => Number(b) - Number(a))
    : []
  if (versions.length === 0) throw new Error(`${set.id}: no PostgreSQL server binaries under ${host}/<version>/bin`)
  return { version: Number(versions[0]), bin: join(root, versions[0]!, 'bin') }
}

/** Parent PID and state of a process from /proc, or undefined once it is gone. */
function procStat(pid: number): { ppid: number; state: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name is in parentheses and may contain spaces; fields follow the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { state: fields[0]!, ppid: Number(fields[1]) }
  } catch {
    return undefined
  }
}

function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((p) => procStat(p)?.ppid === pid)
}

/** Zombies count as gone: an orphaned backend may wait for a reaper that never comes in a container. */
const isGone = (pid: number) => {
  const s = procStat(pid)
  return s === undefined || s.state === 'Z'
}

export async function startPostgres(opts: { set?: PeerSet } = {}): Promise<Pg> {
  const set = opts.set ?? DEBIAN12_SET
  const { version, bin } = postgresBin(set)
  const { uid, gid } = set.ids('postgres')
  const dir = mkdtempSync(join(tmpdir(), 'mailhostd-pg-'))
  process.on('exit', () => {
    try {
      rmSync(dir, { recursive: true, force: true })
    } catch {
      // A server killed at exit may still be writing; a leftover temp dir is harmless.
    }
  })
  chownSync(dir, uid, gid)
  const dataDir = join(dir, 'data')
  const password = randomBytes(12).toString('hex')
  const pwfile = join(dir, 'pwfile')
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 })
  chownSync(pwfile, uid, gid)
  // initdb refuses to run as root; the server would too, so both run as the postgres OS user.
  await set.mustRun('runuser', [
    '-u',
    'postgres',
    '--',
    join(bin, 'initdb'),
    '-D',
    dataDir,
    '-U',
    'postgres',
    `--pwfile=${pwfile}`,
    '--auth-local=trust',
    '--auth-host=scram-sha-256',
    '-E',
    'UTF8',
    '--locale=C',
    '--no-sync',
  ])
  rmSync(pwfile)
  const port = await freePort()

  let server: Started | undefined
  const launch = async () => {
    const s = set.start(
      join(bin, 'postgres'),
      [
        '-D',
        dataDir,
        '-p',
        String(port),
        '-k',
        dir,
        '-c',
        'listen_addresses=127.0.0.1',
        // fsync off: a killed server loses nothing that reached the kernel, and tests never
        // crash the kernel. synchronous_commit stays on: each commit writes its WAL before it
        // returns (no fsync, so it is cheap), or a SIGKILL would take back commits a test relies
        // on (seen: the demo accounts vanished after a kill, the domains committed before them
        // did not).
        '-c',
        'fsync=off',
        '-c',
        'full_page_writes=off',
        '-c',
        'shared_buffers=16MB',
        '-c',
        'max_connections=60',
      ],
      { user: { uid, gid }, cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C' } },
    )
    server = s
    await waitReady(s, port, password)
  }
  await launch()

  const urlOf = (db: string) => `postgres://postgres:${password}@127.0.0.1:${port}/${db}`
  const createDatabase = async (name: string) => {
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain database name: ${name}`)
    const admin = new pg.Client({ connectionString: urlOf('postgres'), connectionTimeoutMillis: 5000 })
    await admin.connect()
    try {
      await admin.query(`create database ${name}`)
    } finally {
      await admin.end()
    }
    return urlOf(name)
  }
  const url = await createDatabase(DATABASE)

  const stop = async () => {
    await server?.stop('SIGINT', 15_000)
  }
  const kill = async () => {
    const s = server
    if (!s || s.child.exitCode !== null || s.child.signalCode !== null) return
    const backends = childrenOf(s.pid)
    for (const p of [s.pid, ...backends]) {
      try {
        process.kill(p, 'SIGKILL')
      } catch {
        /* already gone */
      }
    }
    await s.exited
    const deadline = Date.now() + 10_000
    while (!backends.every(isGone)) {
      if (Date.now() > deadline) throw new Error(`PostgreSQL backends ${backends.join(',')} survived SIGKILL`)
      await sleep(25)
    }
  }

  return {
    set,
    version,
    url,
    port,
    password,
    get pid() {
      return server!.pid
    },
    stop,
    kill,
    restart: async () => {
      await stop()
      await launch()
    },
    createDatabase,
  }
}

/** Polls with a real login until the server accepts sessions (crash recovery included). */
async function waitReady(s: Started, port: number, password: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS
  let last: string
  for (;;) {
    if (s.child.exitCode !== null || s.child.signalCode !== null) {
      throw new Error(`PostgreSQL exited during start-up. Server log:\n${s.output()}`)
    }
    const c = new pg.Client({
      host: '127.0.0.1',
      port,
      user: 'postgres',
      password,
      database: 'postgres',
      connectionTimeoutMillis: 1000,
    })
    try {
      await c.connect()
      await c.end()
      return
    } catch (e) {
      last = (e as Error).message
      await c.end().catch(() => undefined)
    }
    if (Date.now() > deadline) {
      await s.stop('SIGKILL')
      throw new Error(`PostgreSQL not ready on port ${port} after ${READY_TIMEOUT_MS} ms (${last}). Server log:\n${s.output()}`)
    }
    await sleep(100)
  }
}
