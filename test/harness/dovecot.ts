// Throwaway Dovecot instances for tests: a front proxy (the Lua or, on Dovecot 2.3, the dict
// variant), a Dovecot 2.3 director (the Lua proxy plus dovecot/2.3/director.conf, a ring of one)
// or a backend with demo users and one message each, from a peer set's Dovecot: Debian 12's 2.3
// with dovecot/2.3/*, or Debian 13's 2.4 with the plain dovecot/* files. Each instance has its own
// base_dir, state_dir, log file and mail dirs in a temp dir and listens on free loopback ports
// (a backend may be given its own 127.0.0.x address and fixed ports: the director tells members
// apart by IP only); the system Dovecot (/etc/dovecot, /run/dovecot) is never touched.
//
// `dovecot -F` keeps the master in the foreground, so the process spawned here IS the master and
// holds every listening socket (login processes get them passed). The instance is up when the
// master listens on all its ports. kill() and stop() stop it as systemd stops dovecot.service
// (KillMode=control-group): SIGTERM to the master and to every process under it at once, SIGKILL
// by PID to any still running after that. SIGTERM to the master alone leaves its mail processes
// serving their sessions (seen on 2.3 and 2.4: IMAP NOOPs answered seconds after the master had
// exited), which is no stop at all for a pool member whose users go elsewhere meanwhile.
//
// The shipped .conf files are loaded as they are and rewritten only for ports, addresses, paths,
// the script's settings and (backend) the mail user: vmail does not exist here, the system user
// `mail` does. mailhostd.lua is copied verbatim: its settings live in the .conf (lua_settings on
// 2.4, import_environment on 2.3), as in production.

import { chmod, chown, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import { demoClusterConfig } from '../e2e/demo-table.js'
import { startMailhostd, type Mailhostd } from './mailhostd.js'
import { startPostgres, type Pg } from './postgres.js'
import { mustRun, type RunResult, type Started } from './process.js'
import { DEBIAN12_SET, type PeerSet } from './peer-set.js'
import { freePort, freePorts } from './ports.js'
import { waitForListener } from './postfix.js'
import { descendants, forget, reap, removeOnExit, stopTree } from './process-tree.js'
import { startSlapd, type Slapd, slapdDirectory } from './slapd.js'
import { accountsLdif, type ChaosAccount } from '../chaos/directory.js'

const file = (name: string) => fileURLToPath(new URL(`../../dovecot/${name}`, import.meta.url))
/** The one script for both Dovecot releases. */
export const LUA_SCRIPT = file('mailhostd.lua')

/** The shipped files for one Dovecot release (docs/dovecot.md's table). */
export interface DovecotFiles {
  readonly proxyLua: string
  readonly backend: string
  readonly authPolicy: string
  /** The dict variant: Dovecot 2.3 only (2.4 has no dict passdb and speaks dict protocol v4). */
  readonly proxyDict?: string
  readonly dictAuthExt?: string
  /** The director, on top of proxyLua: Dovecot 2.3 only (2.4 removed the director). */
  readonly director?: string
}

/** Dovecot 2.4's files have the plain names; 2.3's live in dovecot/2.3/. */
export function dovecotFiles(set: PeerSet): DovecotFiles {
  if (set.dovecot === '2.4') return { proxyLua: file('proxy-lua.conf'), backend: file('backend.conf'), authPolicy: file('auth-policy.conf') }
  return {
    proxyLua: file('2.3/proxy-lua.conf'),
    backend: file('2.3/backend.conf'),
    authPolicy: file('2.3/auth-policy.conf'),
    proxyDict: file('2.3/proxy-dict.conf'),
    dictAuthExt: file('2.3/dovecot-dict-auth.conf.ext'),
    director: file('2.3/director.conf'),
  }
}

export interface MailUser {
  user: string
  password: string
}

/** The demo accounts (fixtures/demo/directory.sql, fixtures/ldap/demo.ldif) by home backend. */
export const DEMO_MAIL_USERS: Readonly<Record<'mx1' | 'mx2', readonly MailUser[]>> = {
  mx1: [
    { user: 'alice@example.org', password: 'wonderland' },
    { user: 'carol@example.org', password: 'carol-disabled' },
  ],
  mx2: [{ user: 'bob@example.org', password: 'builder' }],
}

/**
 * A backend's log line for a login of `user` it accepted, then `rest` (a pattern): "Login:
 * user=<...>" on Dovecot 2.3, "Logged in: user=<...>" on 2.4.
 */
export function loggedIn(user: string, rest = ''): RegExp {
  return new RegExp(`(Login|Logged in): user=<${user.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}>${rest}`)
}

/** The Subject of the one message each backend mailbox starts with. */
export const helloSubject = (backend: string) => `hello from ${backend}`

interface Common {
  /** Whose Dovecot: Debian 12's (2.3, default) or Debian 13's (2.4). */
  set?: PeerSet
  /**
   * Keep Dovecot's auth penalty (anvil delays logins from an IP after its failures, up to 15 s).
   * Off by default: every test client comes from 127.0.0.1, so one test's failures would slow
   * down every later login of the file.
   */
  authPenalty?: boolean
  /** Debug logging for auth and mail (auth_debug or log_debug): the logs tests grep for leaked passwords. */
  debug?: boolean
  /** dovecot.conf settings appended last, so they win (e.g. auth_failure_delay for timing). */
  settings?: Record<string, string>
}

export interface BackendOptions extends Common {
  role: 'backend'
  /** Names the backend in its messages' Subject: "hello from <name>". */
  name: string
  users: readonly MailUser[]
  /** Include dovecot/auth-policy.conf, pointed at mailhostd's HTTP port with this secret. */
  authPolicy?: { httpPort: number; secret: string }
  /** The loopback address every listener binds (127.0.0.1 by default): one per director member. */
  address?: string
  /** Fixed ports instead of free ones: a director's members share them. */
  ports?: { imap: number; pop3: number; lmtp?: number }
  /**
   * Shared storage: the mailboxes live under this directory, made once by writeMailboxes() for
   * every backend that shares it (a pool's members), instead of in the backend's own temp dir.
   */
  mailDir?: string
  /**
   * Doveadm's HTTP API on the backend's address (POST http://<address>:<port>/doveadm/v1, with
   * "Authorization: X-Dovecot-API <base64 key>"): what mailhostd kicks a moved user's sessions
   * through.
   */
  doveadmHttp?: { port: number; apiKey: string }
}

export interface LuaProxyOptions extends Common {
  role: 'proxy-lua'
  /** mailhostd's HTTP listener. */
  httpPort: number
  secret: string
  /** The script's timeout setting (20s as shipped), for tests of a hung mailhostd. */
  timeoutMs?: number
  /** The script's mode setting (verify as shipped): lookup leaves the password to the backend; the script refuses anything else. */
  mode?: string
  /**
   * Proxy LMTP too, as the shipped file's comment says (lmtp added to protocols, lmtp_proxy =
   * yes), on one more loopback port: ports.lmtp.
   */
  lmtpProxy?: boolean
}

export interface DictProxyOptions extends Common {
  role: 'proxy-dict'
  /** mailhostd's listen.dict socket. */
  dictSocket: string
}

/** A director ring of one on 127.0.0.1: the Lua proxy's passdb, logins and LMTP handed to the director. */
export interface DirectorOptions extends Omit<LuaProxyOptions, 'role'> {
  role: 'director'
  /** director_mail_servers: each member's address and the tag naming its pool. */
  mailServers: readonly { address: string; tag: string }[]
  /** director_user_expire, as Dovecot writes times ("15 min" as shipped; at least 10 s). */
  userExpire?: string
}

export type DovecotOptions = BackendOptions | LuaProxyOptions | DictProxyOptions | DirectorOptions

export interface Dovecot {
  readonly role: DovecotOptions['role']
  readonly set: PeerSet
  /** The master's PID; changes on restart(). */
  readonly pid: number
  readonly dir: string
  readonly configFile: string
  /** The address every listener binds. */
  readonly address: string
  /** lmtp: a backend's, a director's or a Lua proxy's (lmtpProxy) LMTP; director: the ring's inet_listener. */
  readonly ports: { imap: number; pop3: number; lmtp?: number; director?: number; doveadm?: number }
  /** Every file Dovecot logs to (one: log_path). */
  readonly logFiles: readonly string[]
  log(): Promise<string>
  waitForLog(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>
  /** doveadm of the instance's peer set against this instance (`doveadm -c <its config> ...`). */
  doveadm(args: readonly string[]): Promise<RunResult>
  /**
   * The users with live sessions on this instance and how many each has (`doveadm who` through
   * its base_dir); empty while the instance is killed, whose sessions died with it.
   */
  who(): Promise<Map<string, number>>
  /** Stops the master and its children (the service is down); config, mail and ports stay for restart(). */
  kill(): Promise<void>
  /** Starts a killed instance again, on the same ports with the same config and mail. */
  restart(): Promise<void>
  /** Stops the master and its children, removes the temp dir. Idempotent. */
  stop(): Promise<void>
}

/** Replaces `from` in a shipped file's text, failing loudly when the file no longer has it. */
export function rewrite(text: string, name: string, from: string | RegExp, to: string): string {
  const found = typeof from === 'string' ? text.includes(from) : new RegExp(from.source, from.flags.replace('g', '')).test(text)
  if (!found) throw new Error(`${name} no longer contains ${String(from)}; update test/harness/dovecot.ts`)
  return typeof from === 'string' ? text.split(from).join(to) : text.replace(from, () => to)
}

/**
 * A file only root and the dovecot group read: the auth process (user dovecot) reads secrets.
 * The group is the peer set's own dovecot group, whose gid differs between the sets.
 */
async function writeDovecotSecret(set: PeerSet, path: string, text: string): Promise<void> {
  await writeFile(path, text, { mode: 0o640 })
  await chmod(path, 0o640)
  await chown(path, 0, set.gid('dovecot'))
}

function message(backend: string, user: string): string {
  return [
    'From: harness@example.org',
    `To: ${user}`,
    `Subject: ${helloSubject(backend)}`,
    'Date: Mon, 01 Jan 2024 00:00:00 +0000',
    `Message-ID: <hello.${backend}.${user}>`,
    '',
    `This mailbox lives on ${backend}.`,
    '',
  ].join('\r\n')
}

/**
 * Mailboxes for `users` under `vmail` (<domain>/<local>/Maildir), each holding one message whose
 * Subject names `name`, owned by the set's `mail` user that the backends' mail processes run as.
 */
export async function writeMailboxes(set: PeerSet, vmail: string, name: string, users: readonly MailUser[]): Promise<void> {
  const mail = set.ids('mail')
  for (const [i, u] of users.entries()) {
    const [local, domain] = u.user.split('@') as [string, string]
    const maildir = join(vmail, domain, local, 'Maildir')
    for (const sub of ['cur', 'new', 'tmp']) await mkdir(join(maildir, sub), { recursive: true })
    await writeFile(join(maildir, 'new', `1700000000.M${i}P1.${name}`), message(name, u.user))
  }
  await mkdir(vmail, { recursive: true })
  await mustRun('chown', ['-R', `${mail.uid}:${mail.gid}`, vmail])
}

/**
 * The backend's IMAP ID answer names it (field x-backend): a client logged in through a proxy
 * talks to the backend after LOGIN, so `ID NIL` tells it where it landed, also when backends share
 * one mail directory and their mailboxes look alike.
 */
function imapIdOf(set: PeerSet, name: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`a backend name for IMAP ID must be a plain word: ${name}`)
  return set.dovecot === '2.3' ? `imap_id_send = name * x-backend ${name}\n` : `imap_id_send {\n  name = *\n  x-backend = ${name}\n}\n`
}

/** Doveadm's HTTP listener; 2.4 names the listener's protocol with `type`, 2.3 by the listener's name. */
function doveadmHttpListener(set: PeerSet, ip: string, o: { port: number; apiKey: string }): string {
  if (!/^[A-Za-z0-9_-]+$/.test(o.apiKey)) throw new Error('a doveadm API key for the harness must be a plain word')
  const address = set.dovecot === '2.3' ? `address = ${ip}` : `listen = ${ip}\n    type = http`
  return `doveadm_api_key = ${o.apiKey}\nservice doveadm {\n  inet_listener http {\n    ${address}\n    port = ${o.port}\n  }\n}\n`
}

async function backendFiles(set: PeerSet, dir: string, o: BackendOptions, ports: { lmtp: number }, address: string): Promise<string> {
  const files = dovecotFiles(set)
  const mail = set.ids('mail')
  const vmail = o.mailDir ?? join(dir, 'vmail')
  if (o.mailDir === undefined) await writeMailboxes(set, vmail, o.name, o.users)
  // {PLAIN} per line overrides the file's default scheme, so the shipped settings stay as they
  // are. The auth process (user dovecot) reads it, as /etc/dovecot/users in production.
  await writeDovecotSecret(set, join(dir, 'users'), o.users.map((u) => `${u.user}:{PLAIN}${u.password}`).join('\n') + '\n')

  const name = files.backend
  let conf = await readFile(name, 'utf8')
  conf = rewrite(conf, name, /^login_trusted_networks = .*$/m, 'login_trusted_networks = 127.0.0.0/8')
  conf = rewrite(conf, name, '/etc/dovecot/users', join(dir, 'users'))
  if (set.dovecot === '2.3') {
    conf = rewrite(conf, name, 'uid=vmail gid=vmail home=/var/vmail/', `uid=${mail.uid} gid=${mail.gid} home=${vmail}/`)
    conf = rewrite(conf, name, /address = 10\.0\.0\.11\n(\s*)port = 24\n/, `address = ${address}\n    port = ${ports.lmtp}\n`)
  } else {
    conf = rewrite(conf, name, /uid = vmail\n(\s*)gid = vmail\n(\s*)home = \/var\/vmail\//, `uid = ${mail.uid}\n    gid = ${mail.gid}\n    home = ${vmail}/`)
    conf = rewrite(conf, name, /listen = 10\.0\.0\.11\n(\s*)port = 24\n/, `listen = ${address}\n    port = ${ports.lmtp}\n`)
  }
  if (o.authPolicy) {
    const policyName = files.authPolicy
    let policy = await readFile(policyName, 'utf8')
    policy = rewrite(policy, policyName, 'http://127.0.0.1:10090/', `http://127.0.0.1:${o.authPolicy.httpPort}/`)
    policy = rewrite(policy, policyName, '</etc/dovecot/mailhostd-policy-header', `<${join(dir, 'policy-header')}`)
    await writeDovecotSecret(set, join(dir, 'policy-header'), `X-Auth-Key:${o.authPolicy.secret}`)
    await writeFile(join(dir, 'auth-policy.conf'), policy)
    conf = rewrite(conf, name, '#   !include /etc/dovecot/mailhostd-auth-policy.conf', `!include ${join(dir, 'auth-policy.conf')}`)
  }
  // Mail processes run as `mail` (uid 8); Dovecot refuses uids below first_valid_uid (500).
  conf = `${conf}\nfirst_valid_uid = ${mail.uid}\n${imapIdOf(set, o.name)}`
  if (o.doveadmHttp) conf += doveadmHttpListener(set, address, o.doveadmHttp)
  return conf
}

/**
 * The script goes in verbatim; its settings are the .conf's, rewritten like any other setting:
 * lua_settings { } on 2.4, the environment Dovecot 2.3 passes on (import_environment).
 */
async function luaProxyFiles(set: PeerSet, dir: string, o: LuaProxyOptions | DirectorOptions): Promise<string> {
  const name = dovecotFiles(set).proxyLua
  const script = join(dir, 'mailhostd.lua')
  await copyFile(LUA_SCRIPT, script)
  await chmod(script, 0o644)
  await writeDovecotSecret(set, join(dir, 'mailhostd.secret'), `${o.secret}\n`)
  const timeout = o.timeoutMs === undefined ? undefined : `${o.timeoutMs}ms`
  let conf = await readFile(name, 'utf8')
  if (set.dovecot === '2.3') {
    conf = rewrite(conf, name, 'file=/etc/dovecot/mailhostd.lua', `file=${script}`)
    conf = rewrite(conf, name, 'MAILHOSTD_URL=http://127.0.0.1:10090 ', `MAILHOSTD_URL=http://127.0.0.1:${o.httpPort} `)
    conf = rewrite(conf, name, 'MAILHOSTD_SECRET_FILE=/etc/dovecot/mailhostd.secret ', `MAILHOSTD_SECRET_FILE=${join(dir, 'mailhostd.secret')} `)
    if (timeout) conf = rewrite(conf, name, 'MAILHOSTD_TIMEOUT=20s ', `MAILHOSTD_TIMEOUT=${timeout} `)
    if (o.mode) conf = rewrite(conf, name, /MAILHOSTD_MODE=verify$/m, `MAILHOSTD_MODE=${o.mode}`)
    return conf
  }
  conf = rewrite(conf, name, 'lua_file = /etc/dovecot/mailhostd.lua', `lua_file = ${script}`)
  conf = rewrite(conf, name, /^(\s*)url = http:\/\/127\.0\.0\.1:10090$/m, `    url = http://127.0.0.1:${o.httpPort}`)
  conf = rewrite(conf, name, /^(\s*)secret_file = \/etc\/dovecot\/mailhostd\.secret$/m, `    secret_file = ${join(dir, 'mailhostd.secret')}`)
  if (timeout) conf = rewrite(conf, name, /^(\s*)timeout = 20s$/m, `    timeout = ${timeout}`)
  if (o.mode) conf = rewrite(conf, name, /^(\s*)mode = verify$/m, `    mode = ${o.mode}`)
  return conf
}

/**
 * The Lua proxy with dovecot/2.3/director.conf included after it, as docs/dovecot.md installs it,
 * rewritten to a ring of one on 127.0.0.1:<ring port> in front of `mailServers`.
 */
async function directorFiles(set: PeerSet, dir: string, o: DirectorOptions, ports: { ring: number; lmtp: number }): Promise<string> {
  const name = dovecotFiles(set).director
  if (!name) throw new Error(`Dovecot ${set.dovecot} (${set.label}) has no director: Dovecot 2.4 removed it`)
  let conf = await readFile(name, 'utf8')
  conf = rewrite(conf, name, /^director_servers = .*$/m, `director_servers = 127.0.0.1:${ports.ring}`)
  conf = rewrite(conf, name, /^director_mail_servers = .*$/m, `director_mail_servers = ${o.mailServers.map((s) => `${s.address}@${s.tag}`).join(' ')}`)
  conf = rewrite(conf, name, /inet_listener director \{\n(\s*)port = 9090\n/, `inet_listener director {\n    address = 127.0.0.1\n    port = ${ports.ring}\n`)
  conf = rewrite(conf, name, /inet_listener lmtp \{\n(\s*)port = 24\n/, `inet_listener lmtp {\n    address = 127.0.0.1\n    port = ${ports.lmtp}\n`)
  if (o.userExpire) conf = rewrite(conf, name, /^director_user_expire = .*$/m, `director_user_expire = ${o.userExpire}`)
  await writeFile(join(dir, 'director.conf'), conf)
  return `${await luaProxyFiles(set, dir, o)}\n!include ${join(dir, 'director.conf')}\n`
}

async function dictProxyFiles(set: PeerSet, dir: string, o: DictProxyOptions): Promise<string> {
  const { proxyDict, dictAuthExt } = dovecotFiles(set)
  if (!proxyDict || !dictAuthExt) throw new Error(`Dovecot ${set.dovecot} (${set.label}) has no dict passdb: the dict proxy runs on Dovecot 2.3 only`)
  if (o.dictSocket.includes(':')) throw new Error(`a dict socket path cannot contain ":": ${o.dictSocket}`)
  const ext = await readFile(dictAuthExt, 'utf8')
  await writeFile(join(dir, 'dict-auth.conf.ext'), rewrite(ext, dictAuthExt, ':/run/mailhostd/dict.sock:', `:${o.dictSocket}:`))
  const conf = await readFile(proxyDict, 'utf8')
  return rewrite(conf, proxyDict, '/etc/dovecot/mailhostd-dict-auth.conf.ext', join(dir, 'dict-auth.conf.ext'))
}

/** A loopback listener on ip:port; `disable` names the service's TLS listener, turned off. 2.4 renamed `address` to `listen`. */
function listener(set: PeerSet, service: string, name: string, ip: string, port: number, disable?: string): string {
  const address = set.dovecot === '2.3' ? 'address' : 'listen'
  const off = disable ? `  inet_listener ${disable} {\n    port = 0\n  }\n` : ''
  return `service ${service} {\n  inet_listener ${name} {\n    ${address} = ${ip}\n    port = ${port}\n  }\n${off}}\n`
}

/** Debug logs for the auth process and mail; 2.4 replaced auth_debug with the log_debug filter. */
const DEBUG: Record<PeerSet['dovecot'], Record<string, string>> = {
  '2.3': { auth_debug: 'yes', auth_verbose: 'yes', mail_debug: 'yes', verbose_proctitle: 'yes' },
  '2.4': { log_debug: 'category=auth', auth_verbose: 'yes', mail_debug: 'yes', verbose_proctitle: 'yes' },
}
const START_TIMEOUT_MS = 30_000

/**
 * The first lines of a 2.4 config: the harness does not include the stock dovecot.conf, so it
 * sets the versions itself, the same ones the set's stock dovecot.conf sets (2.4 refuses a
 * config whose first setting is not dovecot_config_version).
 */
async function versionLines(set: PeerSet): Promise<string[]> {
  if (set.dovecot === '2.3') return []
  const stock = await readFile(set.path('/etc/dovecot/dovecot.conf'), 'utf8')
  return ['dovecot_config_version', 'dovecot_storage_version'].map((key) => {
    const m = new RegExp(`^${key} = (\\S+)$`, 'm').exec(stock)
    if (!m) throw new Error(`${set.label}: no ${key} in its stock /etc/dovecot/dovecot.conf`)
    return `${key} = ${m[1]}`
  })
}

export async function startDovecot(o: DovecotOptions): Promise<Dovecot> {
  const set = o.set ?? DEBIAN12_SET
  const dir = await mkdtemp(join(tmpdir(), `mailhostd-dovecot-${o.role}-`))
  removeOnExit(dir)
  // Dovecot's unprivileged processes (dovecot, dovenull, mail) must reach files in here.
  await chmod(dir, 0o755)
  const logFile = join(dir, 'dovecot.log')
  const configFile = join(dir, 'dovecot.conf')
  const address = (o.role === 'backend' && o.address) || '127.0.0.1'
  try {
    const [freeImap, freePop3, freeLmtp, ring] = (await freePorts(4)) as [number, number, number, number]
    const fixed = o.role === 'backend' ? o.ports : undefined
    const [imap, pop3, lmtp] = [fixed?.imap ?? freeImap, fixed?.pop3 ?? freePop3, fixed?.lmtp ?? freeLmtp]
    const lmtpProxy = o.role === 'proxy-lua' && o.lmtpProxy === true
    const snippet =
      o.role === 'backend'
        ? await backendFiles(set, dir, o, { lmtp }, address)
        : o.role === 'proxy-lua'
          ? await luaProxyFiles(set, dir, o)
          : o.role === 'director'
            ? await directorFiles(set, dir, o, { ring, lmtp })
            : await dictProxyFiles(set, dir, o)
    const files = dovecotFiles(set)
    const shipped = {
      backend: files.backend,
      'proxy-lua': files.proxyLua,
      'proxy-dict': files.proxyDict,
      director: `${files.proxyLua} + ${files.director}`,
    }[o.role]
    const settings = { ...(o.debug ? DEBUG[set.dovecot] : {}), ...o.settings }
    const conf = [
      ...(await versionLines(set)),
      '# Written by test/harness/dovecot.ts for one test run.',
      `base_dir = ${join(dir, 'run')}`,
      `state_dir = ${join(dir, 'state')}`,
      `log_path = ${logFile}`,
      `instance_name = ${basename(dir)}`,
      `listen = ${address}`,
      'ssl = no',
      '',
      `# ---- ${shipped} (rewritten)`,
      snippet,
      '# ---- harness: loopback listeners on free ports, the ssl ones off',
      listener(set, 'imap-login', 'imap', address, imap, 'imaps'),
      listener(set, 'pop3-login', 'pop3', address, pop3, 'pop3s'),
      ...(lmtpProxy ? ['protocols = imap pop3 lmtp', 'lmtp_proxy = yes', listener(set, 'lmtp', 'lmtp', address, lmtp)] : []),
      // The documented way to turn the auth penalty off (2.3 and 2.4 alike): the auth process
      // cannot reach anvil.
      ...(o.authPenalty ? [] : ['service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n']),
      ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`),
      '',
    ].join('\n')
    await writeFile(configFile, conf)

    const ports = {
      imap,
      pop3,
      ...(o.role === 'backend' || o.role === 'director' || lmtpProxy ? { lmtp } : {}),
      ...(o.role === 'director' ? { director: ring } : {}),
      ...(o.role === 'backend' && o.doveadmHttp ? { doveadm: o.doveadmHttp.port } : {}),
    }
    const instanceFiles = { role: o.role, set, dir, configFile, logFile, address, ports }
    return instance({ ...instanceFiles, proc: await startMaster(instanceFiles) })
  } catch (e) {
    // startMaster stopped a master that did not come up.
    forget(dir)
    await rm(dir, { recursive: true, force: true })
    throw e
  }
}

interface Files {
  role: DovecotOptions['role']
  set: PeerSet
  dir: string
  configFile: string
  logFile: string
  address: string
  ports: Dovecot['ports']
}

/** Starts the master on a written config; up once it listens on every port. */
async function startMaster(f: Files): Promise<Started> {
  const proc = f.set.start('dovecot', ['-F', '-c', f.configFile])
  try {
    for (const port of Object.values(f.ports)) await waitForListener(proc, port, async () => proc.pid, START_TIMEOUT_MS, f.address)
  } catch (e) {
    await stopTree(proc)
    const log = await readFile(f.logFile, 'utf8').catch(() => '(no log file)')
    throw new Error(`Dovecot ${f.set.dovecot} (${f.role}, ${f.set.label}) in ${f.dir} did not come up: ${(e as Error).message}\noutput:\n${proc.output()}\nlog:\n${log}`, { cause: e })
  }
  return proc
}

/**
 * `doveadm -f tab who -1` (one row per connection, a header row naming the columns) as
 * user -> connections.
 */
export function sessionsByUser(tab: string): Map<string, number> {
  const [header, ...rows] = tab.split('\n').filter((l) => l.trim() !== '')
  const column = header?.split('\t').indexOf('username') ?? -1
  if (column < 0) throw new Error(`doveadm who: no username column in ${JSON.stringify(header)}`)
  const users = new Map<string, number>()
  for (const row of rows) {
    const user = row.split('\t')[column]!
    users.set(user, (users.get(user) ?? 0) + 1)
  }
  return users
}

/** The master and every process under it get SIGTERM at once (systemd's control-group stop); stragglers SIGKILL. */
async function stopUnit(proc: Started): Promise<void> {
  const children = await descendants(proc.pid)
  for (const pid of [proc.pid, ...children]) {
    try {
      process.kill(pid, 'SIGTERM')
    } catch {
      // gone already
    }
  }
  await proc.stop('SIGTERM', 5000)
  await reap(children)
}

function instance(p: Files & { proc: Started }): Dovecot {
  let stopping: Promise<void> | undefined
  let proc = p.proc
  /** Whether `proc` runs: a killed master's PID is never signalled again (it may be reused). */
  let running = true
  const log = () => readFile(p.logFile, 'utf8').catch(() => '')
  const doveadm = (args: readonly string[]) => p.set.run('doveadm', ['-c', p.configFile, ...args], { timeoutMs: 30_000 })
  return {
    role: p.role,
    set: p.set,
    get pid() {
      return proc.pid
    },
    dir: p.dir,
    configFile: p.configFile,
    address: p.address,
    ports: p.ports,
    logFiles: [p.logFile],
    log,
    waitForLog: async (re, timeoutMs = 15_000) => {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const text = await log()
        const m = new RegExp(re.source, re.flags.replace('g', '')).exec(text)
        if (m) return m
        if (Date.now() > deadline) throw new Error(`no ${String(re)} in the Dovecot log after ${timeoutMs} ms; tail:\n${text.split('\n').slice(-30).join('\n')}`)
        await sleep(100)
      }
    },
    doveadm,
    who: async () => {
      if (!running) return new Map()
      const r = await doveadm(['-f', 'tab', 'who', '-1'])
      // Killed between the check and the call: its anvil went with it, and so did its sessions.
      if (r.code !== 0 && !running) return new Map()
      if (r.code !== 0) throw new Error(`doveadm who on ${p.dir} exited ${r.code}: ${r.stderr.trim()}`)
      return sessionsByUser(r.stdout)
    },
    kill: async () => {
      if (!running) return
      running = false
      await stopUnit(proc)
    },
    restart: async () => {
      if (running) throw new Error('restart() starts a killed instance: kill() it first')
      if (stopping) throw new Error('the instance was stopped and its directory removed')
      proc = await startMaster(p)
      running = true
    },
    stop: () =>
      (stopping ??= (async () => {
        if (running) await stopUnit(proc)
        running = false
        forget(p.dir)
        await rm(p.dir, { recursive: true, force: true })
      })()),
  }
}

// ---- The cluster the login e2e tests share: a real slapd with the demo directory, mailhostd
// built from dist/ whose backends mx1 and mx2 are two Dovecot backends holding the demo users
// (with their passwords) and a message naming the backend, and optionally PostgreSQL as the
// store (the backends' admin_state is set there with SQL) and the dict socket. slapd, PostgreSQL
// and both backends come from one peer set.

export interface LoginCluster {
  readonly slapd: Slapd
  readonly pg: Pg | undefined
  readonly m: Mailhostd
  readonly mx1: Dovecot
  readonly mx2: Dovecot
  /** mailhostd's login.secret. */
  readonly secret: string
  /** mailhostd's listen.dict socket, when started with `dict`. */
  readonly dictSocket: string | undefined
}

export interface LoginClusterOptions {
  /** Whose slapd, PostgreSQL and Dovecot backends: Debian 12's (default) or Debian 13's. */
  set?: PeerSet
  /** PostgreSQL as the store instead of the embedded PGlite. */
  postgres?: boolean
  /** Serve the dict protocol on a socket in a temp dir. */
  dict?: boolean
  /** mailhostd config merged over the cluster's (`login` is merged one level deeper). */
  config?: Record<string, unknown>
  /**
   * More `directory.ldap` keys, given the cluster's slapd (whose URL is known only once it runs),
   * e.g. the admin bind: `(s) => ({ admin: { bindDN: s.rootDN, bindPassword: s.rootPassword } })`.
   */
  ldap?: (slapd: Slapd) => Record<string, unknown>
  /** Options for both backends (debug logs, settings, the auth policy). */
  backends?: Pick<BackendOptions, 'debug' | 'settings'> & { authPolicy?: boolean }
  /** Accounts beyond the demo's, in the directory and on their backend (with their passwords). */
  accounts?: readonly ChaosAccount[]
}

/** Starts the cluster; everything is stopped by t's teardown, also when a later start fails. */
export async function startLoginCluster(t: Test, o: LoginClusterOptions = {}): Promise<LoginCluster> {
  const set = o.set ?? DEBIAN12_SET
  const secret = `login-secret-${randomBytes(9).toString('hex')}`
  const extra = o.accounts ?? []
  const slapd = await startSlapd({ set, ...(extra.length ? { extraLdif: [accountsLdif(extra)] } : {}) })
  t.teardown(() => slapd.stop())
  const pg = o.postgres ? await startPostgres({ set }) : undefined
  if (pg) t.teardown(() => pg.stop())
  const sockDir = o.dict ? await mkdtemp(join(tmpdir(), 'mailhostd-dict-')) : undefined
  if (sockDir) {
    removeOnExit(sockDir)
    t.teardown(async () => {
      forget(sockDir)
      await rm(sockDir, { recursive: true, force: true })
    })
  }
  const dictSocket = sockDir && join(sockDir, 'dict.sock')
  // Backends with the auth policy need mailhostd's HTTP port before mailhostd (which needs
  // theirs) starts: it gets a free port chosen here instead of port 0.
  const httpPort = await freePort()
  const backend = async (name: 'mx1' | 'mx2') => {
    const d = await startDovecot({
      set,
      role: 'backend',
      name,
      users: [...DEMO_MAIL_USERS[name], ...extra.filter((a) => a.backend === name).map((a) => ({ user: a.address, password: a.password }))],
      ...(o.backends?.debug ? { debug: true } : {}),
      ...(o.backends?.settings ? { settings: o.backends.settings } : {}),
      ...(o.backends?.authPolicy ? { authPolicy: { httpPort, secret } } : {}),
    })
    t.teardown(() => d.stop())
    return d
  }
  const mx1 = await backend('mx1')
  const mx2 = await backend('mx2')
  const { login, listen, ...rest } = o.config ?? {}
  const m = await startMailhostd({
    domains: demoClusterConfig().domains,
    backends: [mx1, mx2].map((d, i) => ({
      id: `mx${i + 1}`,
      mailHosts: [`mx${i + 1}.example.org`],
      address: '127.0.0.1',
      route: 'lmtp',
      ports: { imap: d.ports.imap, pop3: d.ports.pop3, lmtp: d.ports.lmtp },
    })),
    directory: slapdDirectory(slapd, o.ldap?.(slapd)),
    ...(pg ? { store: { url: pg.url } } : {}),
    login: { secret, ...(login as object | undefined) },
    listen: {
      http: { host: '127.0.0.1', port: httpPort },
      ...(dictSocket ? { dict: { path: dictSocket } } : {}),
      ...(listen as object | undefined),
    },
    ...rest,
  })
  t.teardown(() => m.stop())
  return { slapd, pg, m, mx1, mx2, secret, dictSocket }
}
