// Throwaway OpenLDAP servers for tests: a slapd.conf instance in a temp dir, loaded with the demo
// directory by slapadd, run in the foreground on a free loopback port so this process owns its
// PID and can kill, freeze (SIGSTOP) or restart it to play "directory dies" and "directory hangs".

import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { validateConfig } from '../../src/config/load.js'
import type { LdapConfig } from '../../src/config/schema.js'
import { mustRun, type Started } from './process.js'
import { DEBIAN12_SET, type PeerSet } from './peer-set.js'
import { freePorts, waitForPort } from './ports.js'

const FIXTURES_DIR = fileURLToPath(new URL('../../fixtures/ldap/', import.meta.url)).replace(/\/$/, '')
// Paths in the peer set's file system (the same in Debian 12 and 13).
const SCHEMA_DIR = '/etc/ldap/schema'
const SLAPD = '/usr/sbin/slapd'
const HOST = '127.0.0.1'
const START_TIMEOUT_MS = 20_000
const DEFAULT_MAP_SIZE = 64 * 2 ** 20

export const DEMO_BASE_DN = 'dc=example,dc=org'
export const DEMO_BIND_DN = 'cn=mailhostd,ou=services,dc=example,dc=org'
/** The demo service account's password: a published test value (fixtures/ldap/demo.ldif). */
export const DEMO_BIND_PASSWORD = 'mailhostd-secret'
/** The demo admin account (directory.ldap.admin): writes ou=people; a published test value too. */
export const DEMO_ADMIN_DN = 'cn=mailhostd-admin,ou=services,dc=example,dc=org'
export const DEMO_ADMIN_PASSWORD = 'mailhostd-admin-secret'
const ROOT_DN = 'cn=admin,dc=example,dc=org'

export interface SlapdOptions {
  /** Whose slapd and tools: Debian 12's (default) or Debian 13's. */
  set?: PeerSet
  /** LDIF texts loaded with slapadd after demo.ldif, in order (parents before children). */
  extraLdif?: string[]
  /** Let anonymous binds read entries (never userPassword). Off by default, as in production. */
  anonymousRead?: boolean
  /**
   * Serve StartTLS, and ldaps:// on a second port (`ldapsUrl`), with a certificate for
   * 127.0.0.1 from a throwaway CA (`caFile`).
   */
  tls?: boolean
  /**
   * LDIF files loaded with slapadd after `extraLdif`, in order: for directories too large to
   * hold as one string (the scale benchmark writes them streaming).
   */
  ldifFiles?: string[]
  /** mdb maxsize in bytes (default 64 MiB); a million accounts need about 2 GiB. */
  mapSize?: number
  /**
   * Lift the size and time limits of the service account (bindDN), as docs/operations.md tells
   * operators to for a cache warm-up of more than 500 entries.
   */
  serviceUnlimited?: boolean
  /** Milliseconds slapadd may take per file (default 60 s). */
  loadTimeoutMs?: number
  /** Run slapd with `-d stats` (one log line per operation, in output()) instead of `-d none`. */
  statsLog?: boolean
}

export interface Slapd {
  readonly set: PeerSet
  /** ldap://127.0.0.1:PORT */
  readonly url: string
  readonly port: number
  readonly baseDN: string
  /** The read-only service account mailhostd binds as. */
  readonly bindDN: string
  readonly bindPassword: string
  /** The rootdn, which may write; ldapadd/ldapmodify use it. */
  readonly rootDN: string
  readonly rootPassword: string
  /** PEM of the CA that signed the server certificate, when started with `tls`. */
  readonly caFile: string | undefined
  /** ldaps://127.0.0.1:PORT2, when started with `tls`. */
  readonly ldapsUrl: string | undefined
  /** The current slapd process; changes on restart(). */
  readonly pid: number
  /** Everything the current slapd process wrote (errors only: it runs with `-d none`). */
  output(): string
  /** SIGTERM, wait for exit, remove the temp dir. Safe to call more than once. */
  stop(): Promise<void>
  /** SIGKILL and wait: the directory dies. The data dir stays for restart(). */
  kill(): Promise<void>
  /**
   * SIGSTOP, resolved once the kernel reports slapd stopped: the directory hangs, while TCP
   * connects still succeed through the listen backlog.
   */
  pause(): Promise<void>
  /** SIGCONT, resolved once slapd runs again. */
  resume(): Promise<void>
  /** Stops slapd if it runs, starts it again on the same port with the same data. */
  restart(): Promise<void>
  ldapmodify(ldif: string): Promise<void>
  ldapadd(ldif: string): Promise<void>
}

// A crashed test must not leave temp dirs behind; the processes themselves are killed by process.ts.
const liveDirs = new Set<string>()
let exitHooked = false
function removeDirsOnExit(dir: string) {
  liveDirs.add(dir)
  if (exitHooked) return
  exitHooked = true
  process.on('exit', () => {
    for (const d of liveDirs) rmSync(d, { recursive: true, force: true })
  })
}

function fill(template: string, values: Record<string, string>): string {
  return template.replace(/@@([A-Z_]+)@@/g, (_, name: string) => {
    const v = values[name]
    if (v === undefined) throw new Error(`slapd.conf.template: no value for @@${name}@@`)
    return v
  })
}

async function makeCertificates(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const ca = join(dir, 'ca.pem')
  const caKey = join(dir, 'ca.key')
  const cert = join(dir, 'server.pem')
  const key = join(dir, 'server.key')
  const csr = join(dir, 'server.csr')
  const ext = join(dir, 'server.ext')
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  await mustRun('openssl', ['req', '-x509', ...ec, '-keyout', caKey, '-out', ca, '-days', '2', '-subj', '/CN=mailhostd test CA'])
  await mustRun('openssl', ['req', ...ec, '-keyout', key, '-out', csr, '-subj', '/CN=127.0.0.1'])
  await writeFile(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  await mustRun('openssl', [
    'x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial',
    '-out', cert, '-days', '2', '-extfile', ext,
  ])
  return { ca, cert, key }
}

/** The process state letter from /proc (R, S, T for stopped, ...). */
async function procState(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  // The command name in parentheses may contain spaces; the state follows the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
}

async function signalAndWait(pid: number, signal: 'SIGSTOP' | 'SIGCONT'): Promise<void> {
  process.kill(pid, signal)
  const wantStopped = signal === 'SIGSTOP'
  const deadline = Date.now() + 5_000
  while (((await procState(pid)) === 'T') !== wantStopped) {
    if (Date.now() > deadline) throw new Error(`slapd ${pid} did not react to ${signal}`)
    await sleep(10)
  }
}

/** Waits until slapd accepts connections; fails with slapd's own output if it exits first. */
async function waitUntilUp(proc: Started, port: number): Promise<void> {
  let exitCode: number | null | undefined
  void proc.exited.then((code) => (exitCode = code))
  const deadline = Date.now() + START_TIMEOUT_MS
  for (;;) {
    if (exitCode !== undefined) {
      throw new Error(`slapd exited (code ${String(exitCode)}) before listening on ${port}:\n${proc.output().trim()}`)
    }
    try {
      await waitForPort(port, HOST, 250)
      return
    } catch {
      if (Date.now() > deadline) {
        await proc.stop('SIGKILL')
        throw new Error(`slapd did not listen on ${port} within ${START_TIMEOUT_MS} ms:\n${proc.output().trim()}`)
      }
      await sleep(25)
    }
  }
}

export async function startSlapd(opts: SlapdOptions = {}): Promise<Slapd> {
  const dir = await mkdtemp(join(tmpdir(), 'mailhostd-slapd-'))
  removeDirsOnExit(dir)
  try {
    return await setUp(dir, opts)
  } catch (e) {
    liveDirs.delete(dir)
    await rm(dir, { recursive: true, force: true })
    throw e
  }
}

async function setUp(dir: string, opts: SlapdOptions): Promise<Slapd> {
  const set = opts.set ?? DEBIAN12_SET
  const dataDir = join(dir, 'data')
  const runDir = join(dir, 'run')
  await mkdir(dataDir)
  await mkdir(runDir)
  const rootPassword = randomBytes(12).toString('hex')
  // ldap-utils read the password from a file (-y), so it never shows in argv or error messages.
  const rootPasswordFile = join(dir, 'rootpw')
  await writeFile(rootPasswordFile, rootPassword, { mode: 0o600 })

  let caFile: string | undefined
  let tls = ''
  if (opts.tls) {
    const certs = await makeCertificates(dir)
    caFile = certs.ca
    tls = [
      `TLSCACertificateFile\t${certs.ca}`,
      `TLSCertificateFile\t${certs.cert}`,
      `TLSCertificateKeyFile\t${certs.key}`,
    ].join('\n')
  }

  const template = await readFile(join(FIXTURES_DIR, 'slapd.conf.template'), 'utf8')
  const conf = join(dir, 'slapd.conf')
  await writeFile(
    conf,
    fill(template, {
      SCHEMA_DIR,
      FIXTURES_DIR,
      RUN_DIR: runDir,
      DATA_DIR: dataDir,
      ROOT_PASSWORD: rootPassword,
      TLS: tls,
      ANONYMOUS: opts.anonymousRead ? 'by anonymous read' : 'by anonymous none',
      MAX_SIZE: String(opts.mapSize ?? DEFAULT_MAP_SIZE),
      SERVICE_LIMITS: opts.serviceUnlimited ? `limits\tdn.exact="${DEMO_BIND_DN}" size=unlimited time=unlimited` : '',
    }),
  )

  const ldifFiles = [join(FIXTURES_DIR, 'demo.ldif')]
  for (const [i, ldif] of (opts.extraLdif ?? []).entries()) {
    const file = join(dir, `extra-${i}.ldif`)
    await writeFile(file, ldif)
    ldifFiles.push(file)
  }
  ldifFiles.push(...(opts.ldifFiles ?? []))
  const loadTimeout = { timeoutMs: opts.loadTimeoutMs ?? 60_000 }
  for (const file of ldifFiles) await set.mustRun('slapadd', ['-q', '-f', conf, '-l', file], loadTimeout)

  const [port, ldapsPort] = (await freePorts(2, HOST)) as [number, number]
  const url = `ldap://${HOST}:${port}`
  const ldapsUrl = opts.tls ? `ldaps://${HOST}:${ldapsPort}` : undefined
  const listeners = [url, ...(ldapsUrl ? [ldapsUrl] : [])].map((u) => `${u}/`).join(' ')
  const launch = async (): Promise<Started> => {
    // `-d none`: stay in the foreground (so we own the PID) and print only errors.
    const proc = set.start(SLAPD, ['-d', opts.statsLog ? 'stats' : 'none', '-f', conf, '-h', listeners])
    await waitUntilUp(proc, port)
    return proc
  }

  let proc = await launch()
  let paused = false
  let stopped = false

  const ldapTool = async (extra: string[], ldif: string) => {
    await set.mustRun('ldapmodify', ['-x', '-H', url, '-D', ROOT_DN, '-y', rootPasswordFile, ...extra], { input: ldif })
  }
  const resumeIfPaused = async () => {
    if (paused) await signalAndWait(proc.pid, 'SIGCONT')
    paused = false
  }

  return {
    set,
    url,
    port,
    baseDN: DEMO_BASE_DN,
    bindDN: DEMO_BIND_DN,
    bindPassword: DEMO_BIND_PASSWORD,
    rootDN: ROOT_DN,
    rootPassword,
    caFile,
    ldapsUrl,
    get pid() {
      return proc.pid
    },
    output: () => proc.output(),
    async stop() {
      if (stopped) return
      stopped = true
      await resumeIfPaused()
      await proc.stop('SIGTERM')
      liveDirs.delete(dir)
      await rm(dir, { recursive: true, force: true })
    },
    async kill() {
      await proc.stop('SIGKILL')
      paused = false
    },
    async pause() {
      await signalAndWait(proc.pid, 'SIGSTOP')
      paused = true
    },
    resume: resumeIfPaused,
    async restart() {
      if (stopped) throw new Error('slapd was stopped for good; start a new one')
      await resumeIfPaused()
      await proc.stop('SIGTERM')
      proc = await launch()
    },
    ldapmodify: (ldif) => ldapTool([], ldif),
    ldapadd: (ldif) => ldapTool(['-a'], ldif),
  }
}

/**
 * mailhostd's `directory` config for this server's service account, as raw config keys, with
 * `extra` (e.g. `{ timeout: '1s' }` or the admin bind) on top.
 */
export function slapdDirectory(slapd: Slapd, extra: Record<string, unknown> = {}) {
  return { type: 'ldap', ldap: { url: slapd.url, bindDN: slapd.bindDN, bindPassword: slapd.bindPassword, baseDN: slapd.baseDN, ...extra } }
}

/**
 * A validated `directory.ldap` config (defaults filled in) for this server's service account,
 * with `overrides` (raw config keys, e.g. `{ timeout: '1s' }`) on top.
 */
export function ldapConfig(slapd: Slapd, overrides: Record<string, unknown> = {}): LdapConfig {
  const ldap = { url: slapd.url, bindDN: slapd.bindDN, bindPassword: slapd.bindPassword, baseDN: slapd.baseDN, ...overrides }
  const directory = validateConfig({ directory: { type: 'ldap', ldap } }).directory
  if (directory.type !== 'ldap') throw new Error(`directory.type ${directory.type}, not ldap`)
  return directory.ldap
}
