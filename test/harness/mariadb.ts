// Throwaway MariaDB servers for tests (Debian's mariadb-server of the peer set): a data dir in a
// temp dir, mariadbd in the foreground as the set's mysql OS user so the harness owns its PID,
// TCP on 127.0.0.1 only, the socket in the temp dir. Never touches the system's /var/lib/mysql.
//
// mariadb-install-db costs seconds, so each test process initialises one data dir per peer set
// (the template, with the test database and user already in it) and every server starts on a
// copy of it.

import { chown, mkdtemp, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { mustRun, type Started } from './process.js'
import { DEBIAN12_SET, type PeerSet, type PeerSetId } from './peer-set.js'
import { freePort } from './ports.js'
import { forget, removeOnExit } from './process-tree.js'

// Paths in the peer set's file system (the same in Debian 12 and 13).
const MARIADBD = '/usr/sbin/mariadbd'
const INSTALL_DB = '/usr/bin/mariadb-install-db'
const CLIENT = '/usr/bin/mariadb'
const HOST = '127.0.0.1'
const DATABASE = 'mailhostd'
const USER = 'mailhostd'
const READY_TIMEOUT_MS = 30_000
const STOP_GRACE_MS = 30_000

/**
 * Server settings, for mariadb-install-db (which hands them to its bootstrap server) and for
 * every start, so the files the template holds fit the server that opens them.
 */
const SETTINGS = [
  // Debian's own config is not read (its socket, pid file and data dir are the system's).
  '--no-defaults',
  // Each commit's redo log reaches the kernel before the commit returns, and is fsynced once a
  // second: a SIGKILLed server keeps every committed row (the kill tests rely on it), only a
  // kernel crash could lose a second of them, and tests never crash the kernel. 0 would lose up
  // to a second of commits on a kill; 1 would fsync each commit for nothing.
  '--innodb-flush-log-at-trx-commit=2',
  // The doublewrite buffer guards pages against torn writes on power loss; without it each page
  // is written once instead of twice.
  '--innodb-doublewrite=0',
  // Native AIO (io_uring or libaio) is refused by some sandboxes (gVisor, seccomp profiles),
  // where InnoDB then will not start; its own I/O threads are plenty for test loads.
  '--innodb-use-native-aio=0',
  // Small files: the template is copied for every server, and ibtmp1 would otherwise be written
  // full (12 MiB) at each start.
  '--innodb-log-file-size=8M',
  '--innodb-buffer-pool-size=16M',
  '--innodb-temp-data-file-path=ibtmp1:1M:autoextend',
  '--skip-log-bin',
  '--performance-schema=0',
  // What Debian's mariadb.conf.d sets on both releases (10.11's compiled-in default is latin1);
  // the collation stays each release's default for utf8mb4 (utf8mb4_general_ci on 10.11,
  // utf8mb4_uca1400_ai_ci on 11.8), as on a site's server. That costs 11.8 about 0.8 s of CPU at
  // every start (it builds its UCA 14 tables; pinning general_ci halves its start time), but it
  // is the collation a Debian 13 site's tables get.
  '--character-set-server=utf8mb4',
  '--skip-name-resolve',
]

export interface MariadbOptions {
  /** Whose mariadbd and client: Debian 12's (default) or Debian 13's. */
  set?: PeerSet
  /** Listen on this port instead of a free one (a test of a failed start takes a busy one). */
  port?: number
  /** Initialise a new data dir for this server instead of copying the template (slower). */
  fresh?: boolean
}

export interface Mariadb {
  readonly set: PeerSet
  /** The server's release, from its greeting: '10.11.19' on Debian 12, '11.8.3' on Debian 13. */
  readonly version: string
  readonly host: string
  readonly port: number
  /** mysql://mailhostd:<password>@127.0.0.1:<port>/mailhostd */
  readonly url: string
  /** A password-authenticated user with every privilege (it may create databases and users). */
  readonly user: string
  readonly password: string
  readonly database: string
  /** mariadbd's PID; changes on restart(). */
  readonly pid: number
  /** Everything the current mariadbd wrote (its error log goes to stderr). */
  output(): string
  /**
   * Runs SQL (one or more statements) with the set's `mariadb` client as the server's root over
   * its socket, in `database` (default: this.database). Rows of every result, tab-separated
   * fields unescaped; NULL reads as the string 'NULL'. Throws with the client's message on error.
   */
  exec(sql: string, opts?: { database?: string }): Promise<string[][]>
  /** Creates an empty database; returns its mysql:// URL for this server's user. */
  createDatabase(name: string): Promise<string>
  /** Clean shutdown (SIGTERM to the PID), then the temp dir is removed. Safe to call twice. */
  stop(): Promise<void>
  /** A crash: SIGKILL. The data dir stays for restart(). */
  kill(): Promise<void>
  /** Stops mariadbd if it runs, starts it again on the same port with the same data. */
  restart(): Promise<void>
}

interface Template {
  readonly dataDir: string
  readonly password: string
}

const templates = new Map<PeerSetId, Promise<Template>>()

/**
 * mariadb-install-db into dataDir, then the test database and user through the bootstrap server
 * (no network, no second start). Root keeps unix_socket authentication: exec() connects as root
 * over the socket, so no root password exists to leak.
 */
async function initialise(set: PeerSet, dataDir: string, password: string): Promise<void> {
  await set.mustRun(
    'runuser',
    ['-u', 'mysql', '--', INSTALL_DB, ...SETTINGS, `--datadir=${dataDir}`, '--auth-root-authentication-method=socket', '--skip-test-db'],
    { timeoutMs: 120_000 },
  )
  // In bootstrap mode the grant tables are not loaded until FLUSH PRIVILEGES; CREATE USER needs them.
  const sql = [
    'FLUSH PRIVILEGES;',
    `CREATE DATABASE ${DATABASE};`,
    `CREATE USER '${USER}'@'%' IDENTIFIED BY '${password}';`,
    `GRANT ALL PRIVILEGES ON *.* TO '${USER}'@'%' WITH GRANT OPTION;`,
  ].join('\n')
  await set.mustRun('runuser', ['-u', 'mysql', '--', MARIADBD, ...SETTINGS, `--datadir=${dataDir}`, '--bootstrap'], {
    input: `${sql}\n`,
    timeoutMs: 120_000,
  })
}

function template(set: PeerSet): Promise<Template> {
  let t = templates.get(set.id)
  if (t === undefined) {
    t = (async () => {
      const dir = await mkdtemp(join(tmpdir(), 'mailhostd-mariadb-template-'))
      removeOnExit(dir)
      const { uid, gid } = set.ids('mysql')
      await chown(dir, uid, gid)
      const password = randomBytes(12).toString('hex')
      const dataDir = join(dir, 'data')
      await initialise(set, dataDir, password)
      return { dataDir, password }
    })()
    // A failed initialisation is retried by the next start, not handed out again.
    t.catch(() => templates.delete(set.id))
    templates.set(set.id, t)
  }
  return t
}

/** Decodes mariadb --batch output: one row a line, fields split by tabs, \\ \t \n \0 escaped. */
function parseBatch(stdout: string): string[][] {
  const lines = stdout.split('\n')
  if (lines.at(-1) === '') lines.pop()
  const unescape = (f: string) => f.replace(/\\([\\tn0])/g, (_, c: string) => ({ '\\': '\\', t: '\t', n: '\n', '0': '\0' })[c]!)
  return lines.map((l) => l.split('\t').map(unescape))
}

/**
 * Reads the server's greeting on a fresh TCP connection: MariaDB sends it only once it accepts
 * sessions (InnoDB crash recovery done, grant tables loaded). Resolves with the version it
 * announces, or undefined if there is none yet.
 */
function greeting(port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = connect({ host: HOST, port })
    let buf = Buffer.alloc(0)
    const done = (v: string | undefined) => {
      clearTimeout(timer)
      s.destroy()
      resolve(v)
    }
    const timer = setTimeout(() => done(undefined), timeoutMs)
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      // A packet: 3-byte little-endian length, sequence number, payload. The handshake's payload
      // starts with protocol version 10, then the server version, NUL-terminated.
      if (buf.length < 4) return
      const len = buf.readUIntLE(0, 3)
      if (buf.length < 4 + len) return
      const payload = buf.subarray(4, 4 + len)
      if (payload[0] !== 10) return done(undefined)
      const end = payload.indexOf(0, 1)
      done(payload.subarray(1, end < 0 ? undefined : end).toString('latin1'))
    })
    s.on('error', () => done(undefined))
    s.on('close', () => done(undefined))
  })
}

/** Polls for the greeting until the server is ready; fails with mariadbd's log if it exits first. */
async function waitReady(set: PeerSet, proc: Started, port: number): Promise<string> {
  let exitCode: number | null | undefined
  void proc.exited.then((code) => (exitCode = code))
  const deadline = Date.now() + READY_TIMEOUT_MS
  for (;;) {
    if (exitCode !== undefined) {
      throw new Error(`mariadbd (${set.id}) exited (code ${String(exitCode)}) before accepting connections on ${HOST}:${port}. mariadbd's log:\n${proc.output().trim()}`)
    }
    const v = await greeting(port, 1_000)
    if (v !== undefined) return v
    if (Date.now() > deadline) {
      await proc.stop('SIGKILL')
      throw new Error(`mariadbd (${set.id}) not ready on ${HOST}:${port} after ${READY_TIMEOUT_MS} ms. mariadbd's log:\n${proc.output().trim()}`)
    }
    await sleep(50)
  }
}

export async function startMariadb(opts: MariadbOptions = {}): Promise<Mariadb> {
  const set = opts.set ?? DEBIAN12_SET
  const dir = await mkdtemp(join(tmpdir(), 'mailhostd-mariadb-'))
  removeOnExit(dir)
  try {
    return await setUp(set, dir, opts)
  } catch (e) {
    forget(dir)
    await rm(dir, { recursive: true, force: true })
    throw e
  }
}

async function setUp(set: PeerSet, dir: string, opts: MariadbOptions): Promise<Mariadb> {
  const { uid, gid } = set.ids('mysql')
  await chown(dir, uid, gid)
  const dataDir = join(dir, 'data')
  let password: string
  if (opts.fresh) {
    password = randomBytes(12).toString('hex')
    await initialise(set, dataDir, password)
  } else {
    const t = await template(set)
    password = t.password
    // -a keeps the owner (the set's mysql user) and modes InnoDB expects.
    await mustRun('cp', ['-a', '--reflink=auto', t.dataDir, dataDir])
  }
  const socket = join(dir, 'mysqld.sock')
  const port = opts.port ?? (await freePort(HOST))

  const launch = async (): Promise<{ proc: Started; version: string }> => {
    const proc = set.start(
      MARIADBD,
      [
        ...SETTINGS,
        `--datadir=${dataDir}`,
        `--socket=${socket}`,
        `--bind-address=${HOST}`,
        `--port=${port}`,
        `--pid-file=${join(dir, 'mariadbd.pid')}`,
        `--tmpdir=${dir}`,
      ],
      { user: { uid, gid }, cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C' } },
    )
    const greeted = await waitReady(set, proc, port)
    // MariaDB 10.x prefixes its version with 5.5.5- in the handshake, for old MySQL clients.
    const version = /^(?:5\.5\.5-)?(\d+\.\d+\.\d+)/.exec(greeted)?.[1]
    if (version === undefined) throw new Error(`mariadbd (${set.id}) greeted with an unknown version: ${greeted}`)
    return { proc, version }
  }

  let { proc, version } = await launch()
  let stopped = false

  const exec = async (sql: string, o: { database?: string } = {}) => {
    const r = await set.mustRun(
      CLIENT,
      ['--no-defaults', `--socket=${socket}`, '--user=root', '--batch', '--skip-column-names', '--default-character-set=utf8mb4', o.database ?? DATABASE],
      { input: sql },
    )
    return parseBatch(r.stdout)
  }
  const urlOf = (db: string) => `mysql://${USER}:${password}@${HOST}:${port}/${db}`

  return {
    set,
    get version() {
      return version
    },
    host: HOST,
    port,
    url: urlOf(DATABASE),
    user: USER,
    password,
    database: DATABASE,
    get pid() {
      return proc.pid
    },
    output: () => proc.output(),
    exec,
    async createDatabase(name) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain database name: ${name}`)
      await exec(`CREATE DATABASE ${name}`)
      return urlOf(name)
    },
    async stop() {
      if (stopped) return
      stopped = true
      await proc.stop('SIGTERM', STOP_GRACE_MS)
      forget(dir)
      await rm(dir, { recursive: true, force: true })
    },
    async kill() {
      await proc.stop('SIGKILL')
    },
    async restart() {
      if (stopped) throw new Error('mariadbd was stopped for good; start a new one')
      await proc.stop('SIGTERM', STOP_GRACE_MS)
      ;({ proc, version } = await launch())
    },
  }
}
