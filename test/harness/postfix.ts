// Throwaway Postfix instances for tests: own config, queue and data directories in a temp dir,
// smtpd on a free loopback port, logging to a file, short retry timers. They never touch
// /etc/postfix or the system queue, and several can run at once.
//
// How the master is started and owned (Postfix 3.7, non-default config directory):
// `postfix -c DIR start-fg` execs postfix-script, which runs the integrity checks a bare `master`
// would skip (post-install create-missing makes the queue directories with the right owners,
// postsuper repairs the queue), then runs `master -s` in the foreground as its child. It does not
// exec the master unless it is PID 1, so the process we spawn is the shell, not the master. The
// master calls setsid() and writes its PID to $queue_directory/pid/master.pid; the instance is up
// when the process named there holds smtpd's listening socket. We stop it by that PID with
// SIGTERM; the master then signals its whole process group (every daemon it started) and exits,
// and the shell exits with it. `postfix start` would work too (`master -w` reports a failed start
// in its exit status, and the same pid file names the detached master), but with start-fg the
// master stays in our process tree and the shell's exit shows at once that the master is gone.

import { chmod, mkdir, mkdtemp, readFile, readdir, readlink, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { mustRun, stopPid, track, type RunResult, type Started } from './process.js'
import { freePort } from './ports.js'
import { DEBIAN12_SET, type PeerSet } from './peer-set.js'

export interface QueueRecipient {
  address: string
  delay_reason?: string
}

/** One message as `postqueue -j` describes it (field names as Postfix prints them). */
export interface QueueEntry {
  queue_name: string
  queue_id: string
  arrival_time: number
  message_size: number
  sender: string
  recipients: QueueRecipient[]
}

export interface PostfixOptions {
  /** Whose Postfix: Debian 12's (3.7, default) or Debian 13's (3.10). */
  set?: PeerSet
  /** main.cf parameters set last, so they win over the harness defaults and the snippet. */
  mainCf?: Record<string, string>
  /** main.cf text appended after the harness defaults (e.g. relayMainCf()). */
  snippet?: string
  /**
   * Files written into the config directory before Postfix starts, e.g. texthash tables; refer
   * to them from main.cf as `texthash:$config_directory/NAME`.
   */
  files?: Record<string, string>
  /**
   * master.cf service entries appended after the harness's own (e.g. the submission services of
   * postfix/submission-master.cf). Every `127.0.0.1:PORT inet` service in it must be listening,
   * held by the master, before startPostfix() returns.
   */
  masterCf?: string
}

export interface Postfix {
  readonly set: PeerSet
  readonly smtpPort: number
  /** The temp dir holding etc/, spool/, data/ and maillog; removed by stop(). */
  readonly dir: string
  readonly configDir: string
  /** The master daemon's PID. */
  readonly pid: number
  /** Stops the master and every daemon it started, then removes `dir`. Idempotent. */
  stop(): Promise<void>
  /** `postqueue -f`: try every queued message now. */
  flush(): Promise<void>
  queue(): Promise<QueueEntry[]>
  /** Polls queue() until `pred` holds; returns the entries that satisfied it. */
  waitForQueue(pred: (entries: QueueEntry[]) => boolean, timeoutMs?: number): Promise<QueueEntry[]>
  /** The instance's mail log so far. */
  log(): Promise<string>
  /** Polls the mail log until `re` matches it; throws with the log's tail on timeout. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>
  /** PIDs of the master and its daemons that are still running (zombies excluded). */
  processes(): Promise<number[]>
  postconf(args: readonly string[]): Promise<RunResult>
  postmap(args: readonly string[]): Promise<RunResult>
  /**
   * Local submission, the way webmail, sieve or cron hand mail to Postfix: this instance's
   * sendmail(1) with `-f from` and the recipients as arguments, the message on stdin. Resolves
   * with sendmail's exit status and output; the message is queued when `code` is 0.
   */
  sendmail(from: string, to: readonly string[], message: string): Promise<RunResult>
}

// The fragments shipped in postfix/. Tests load these very files, rewritten only for ports,
// addresses and paths, so what operators copy is what the suite runs.
const fragment = (name: string) => fileURLToPath(new URL(`../../postfix/${name}`, import.meta.url))
/** MX / relay front-end (main.cf). */
export const RELAY_MAIN_CF = fragment('relay-main.cf')
/** Submission front-end: main.cf part (appended after relay-main.cf) and master.cf services. */
export const SUBMISSION_MAIN_CF = fragment('submission-main.cf')
export const SUBMISSION_MASTER_CF = fragment('submission-master.cf')
/** Backend mail store (main.cf). */
export const BACKEND_MAIN_CF = fragment('backend-main.cf')

/** Where the harness's mailhostd listens; the fragments say 10040, 10041, 10042 and 10045. */
export interface MailhostdPorts {
  socketmap: number
  tcpTransport?: number
  tcpRecipient?: number
  /**
   * The policy listener. Without it relayMainCf() drops the check_policy_service entry, the way
   * relay-main.cf says to run without the policy service (the maps alone then decide).
   */
  policy?: number
}

/** Replaces every `from` in text by `to`, failing if the fragment no longer contains it. */
function replaceAll(text: string, file: string, from: RegExp, to: (match: string, ...groups: string[]) => string): string {
  if (!new RegExp(from.source, from.flags.replace('g', '')).test(text)) {
    throw new Error(`${file} no longer matches ${String(from)}; update test/harness/postfix.ts`)
  }
  return text.replace(from, to)
}

/** mailhostd's loopback ports in a fragment. Ports not given keep their defaults. */
function rewriteMailhostdPorts(text: string, file: string, ports: MailhostdPorts): string {
  const replacement = new Map([
    ['10040', ports.socketmap],
    ['10041', ports.tcpTransport ?? 10041],
    ['10042', ports.tcpRecipient ?? 10042],
    ['10045', ports.policy ?? 10045],
  ])
  return replaceAll(text, file, /127\.0\.0\.1:(1004[0125])(?!\d)/g, (_all, port) => `127.0.0.1:${replacement.get(port)}`)
}

/**
 * postfix/relay-main.cf with only mailhostd's loopback ports replaced. Without `ports.policy`
 * the check_policy_service entry is removed (see MailhostdPorts.policy).
 */
export async function relayMainCf(ports: MailhostdPorts): Promise<string> {
  let text = await readFile(RELAY_MAIN_CF, 'utf8')
  if (!text.includes('socketmap:inet:127.0.0.1:10040:')) {
    throw new Error(`${RELAY_MAIN_CF} no longer uses socketmap:inet:127.0.0.1:10040; update the harness`)
  }
  if (ports.policy === undefined) {
    // The entry spans lines and holds one nested { default_action = ... } group.
    text = replaceAll(text, RELAY_MAIN_CF, /,\s*check_policy_service \{(?:[^{}]|\{[^{}]*\})*\}/g, () => '')
  }
  return rewriteMailhostdPorts(text, RELAY_MAIN_CF, ports)
}

export interface SubmissionPorts extends MailhostdPorts {
  policy: number
  /** Replaces the `submission` (587) service's listen address: 127.0.0.1:PORT. */
  submission: number
  /** Replaces 127.0.0.1:10587, the service for the nginx mail proxy (XCLIENT). */
  proxy: number
}

/**
 * A submission front-end as the fragments describe it: `mainCf` is relay-main.cf followed by
 * submission-main.cf, `masterCf` the services of submission-master.cf. Rewritten: mailhostd's
 * ports, the two services' listen addresses, and the chroot column (the harness runs no chroot;
 * a chrooted smtpd would need copies of /etc files and of the test's maps).
 */
export async function submissionCf(ports: SubmissionPorts): Promise<{ mainCf: string; masterCf: string }> {
  const main = rewriteMailhostdPorts(await readFile(SUBMISSION_MAIN_CF, 'utf8'), SUBMISSION_MAIN_CF, ports)
  let master = await readFile(SUBMISSION_MASTER_CF, 'utf8')
  master = replaceAll(master, SUBMISSION_MASTER_CF, /^submission(?=\s+inet\s)/gm, () => `127.0.0.1:${ports.submission}`)
  master = replaceAll(master, SUBMISSION_MASTER_CF, /^127\.0\.0\.1:10587(?=\s+inet\s)/gm, () => `127.0.0.1:${ports.proxy}`)
  // service type private unpriv chroot ...: the fifth column of each entry's first line.
  master = master.replace(/^(\S+\s+inet\s+\S+\s+\S+\s+)y(?=\s)/gm, (_all, head: string) => `${head}n`)
  return { mainCf: `${await relayMainCf(ports)}\n${main}`, masterCf: master }
}

export interface BackendPorts extends MailhostdPorts {
  /** The front-end: [10.0.0.10]:25 in the fragment becomes [127.0.0.1]:frontEnd. */
  frontEnd: number
}

/** postfix/backend-main.cf with mailhostd's ports and the front-end's address replaced. */
export async function backendMainCf(ports: BackendPorts): Promise<string> {
  const text = rewriteMailhostdPorts(await readFile(BACKEND_MAIN_CF, 'utf8'), BACKEND_MAIN_CF, ports)
  return replaceAll(text, BACKEND_MAIN_CF, /\[10\.0\.0\.10\]:25(?!\d)/g, () => `[127.0.0.1]:${ports.frontEnd}`)
}

/**
 * A throwaway self-signed certificate for 127.0.0.1 and its key, in one PEM text (key first),
 * the form smtpd_tls_chain_files reads. For services that require STARTTLS.
 */
export async function selfSignedPem(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mailhostd-tls-'))
  try {
    const key = join(dir, 'key.pem')
    const cert = join(dir, 'cert.pem')
    await mustRun('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1',
    ])
    return (await readFile(key, 'utf8')) + (await readFile(cert, 'utf8'))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

function baseMainCf(dir: string): Record<string, string> {
  return {
    compatibility_level: '3.6',
    config_directory: join(dir, 'etc'),
    queue_directory: join(dir, 'spool'),
    // Left for post-install to create: it must belong to mail_owner, which a mkdir here would not.
    data_directory: join(dir, 'data'),
    maillog_file: join(dir, 'maillog'),
    // Postfix refuses log files outside these prefixes (default /var, /dev/stdout).
    maillog_file_prefixes: dir,
    myhostname: 'relay.harness.test',
    mydomain: 'harness.test',
    myorigin: '$myhostname',
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'ipv4',
    mydestination: '',
    local_recipient_maps: '',
    alias_maps: '',
    alias_database: '',
    // The test client plays an outside sender, as on a real MX: only relay_domains are accepted.
    mynetworks: '',
    // Routes in tests are [127.0.0.1]:port literals. Mail without one (a missing transport entry,
    // a bounce to the test sender) must not leave the machine, as the demo domains are real:
    // it goes to a loopback port where nothing listens and stays deferred, visible in the log.
    // An error: transport would do it too, but smtpd applies that at RCPT time, before
    // relay_recipient_maps, and would hide the 550 5.1.1 the tests look for.
    relayhost: '[127.0.0.1]:9',
    smtp_dns_support_level: 'disabled',
    smtpd_peername_lookup: 'no',
    // Deferred mail is retried within seconds, so a test can watch it leave the queue. qmgr also
    // keeps a destination it could not reach "dead" for minimal_backoff_time.
    queue_run_delay: '1s',
    minimal_backoff_time: '2s',
    maximal_backoff_time: '4s',
    smtpd_error_sleep_time: '0s',
    biff: 'no',
    append_dot_mydomain: 'no',
  }
}

// No chroot (column 5 = n) anywhere: a chroot would need copies of /etc files and the test maps.
function masterCf(smtpPort: number): string {
  return [
    `127.0.0.1:${smtpPort} inet n - n - - smtpd`,
    'pickup unix n - n 60 1 pickup',
    'cleanup unix n - n - 0 cleanup',
    'qmgr unix n - n 300 1 qmgr',
    'rewrite unix - - n - - trivial-rewrite',
    'bounce unix - - n - 0 bounce',
    'defer unix - - n - 0 bounce',
    'trace unix - - n - 0 bounce',
    'verify unix - - n - 1 verify',
    'flush unix n - n 1000? 0 flush',
    'proxymap unix - - n - - proxymap',
    'proxywrite unix - - n - 1 proxymap',
    'smtp unix - - n - - smtp',
    'relay unix - - n - - smtp',
    'lmtp unix - - n - - lmtp',
    'showq unix n - n - - showq',
    'error unix - - n - - error',
    'retry unix - - n - - error',
    'discard unix - - n - - discard',
    'anvil unix - - n - 1 anvil',
    // TLS session cache and entropy for smtpd: without it STARTTLS is offered but disabled.
    'tlsmgr unix - - n 1000? 1 tlsmgr',
    'scache unix - - n - 1 scache',
    'postlog unix-dgram n - n - 1 postlogd',
    '',
  ].join('\n')
}

/** Ports of the `127.0.0.1:PORT inet` services in master.cf text. */
export function inetServicePorts(masterCfText: string): number[] {
  return [...masterCfText.matchAll(/^127\.0\.0\.1:(\d+)\s+inet\s/gm)].map((m) => Number(m[1]))
}

/** Names of the parameters main.cf text sets (lines `name = value`, not comments). */
export function parameterNames(mainCfText: string): string[] {
  return [...mainCfText.matchAll(/^([A-Za-z0-9_]+)\s*=/gm)].map((m) => m[1]!)
}

function renderMainCf(params: Record<string, string>): string {
  return Object.entries(params)
    .map(([k, v]) => `${k} = ${v}`)
    .join('\n')
}

/** /proc/PID/stat: a zombie (Z) or dead (X) process has exited even though kill(pid, 0) succeeds. */
async function procStat(pid: number): Promise<{ state: string; pgrp: number } | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    // The command name may contain spaces and parentheses; the fixed fields follow the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { state: fields[0] ?? '', pgrp: Number(fields[2]) }
  } catch {
    return undefined
  }
}

/**
 * Whether pid is a running process. Unlike kill(pid, 0) this treats zombies as gone: daemons
 * orphaned when their master exits are reparented to PID 1, which may reap them late or never.
 */
export async function isRunning(pid: number): Promise<boolean> {
  const s = await procStat(pid)
  return s !== undefined && s.state !== 'Z' && s.state !== 'X'
}

/** Running members of a process group, e.g. a Postfix master (a session leader) and its daemons. */
export async function processGroup(pgid: number): Promise<number[]> {
  const pids = (await readdir('/proc')).filter((n) => /^\d+$/.test(n)).map(Number)
  const members: number[] = []
  for (const pid of pids) {
    const s = await procStat(pid)
    if (s && s.pgrp === pgid && s.state !== 'Z' && s.state !== 'X') members.push(pid)
  }
  return members
}

/** Inodes ("socket:[N]") of the sockets listening on host:port (127.0.0.1 unless said), from /proc/net/tcp. */
export async function listeningSockets(port: number, host = '127.0.0.1'): Promise<Set<string>> {
  // /proc/net/tcp writes an IPv4 address as the hex of its 32 bits in host (little-endian) order.
  const ip = host
    .split('.')
    .reverse()
    .map((b) => Number(b).toString(16).toUpperCase().padStart(2, '0'))
    .join('')
  const local = `${ip}:${port.toString(16).toUpperCase().padStart(4, '0')}`
  const table = await readFile('/proc/net/tcp', 'utf8')
  return new Set(
    table
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .filter((f) => f[1] === local && f[3] === '0A')
      .map((f) => `socket:[${f[9]}]`),
  )
}

/** Whether process pid holds a socket listening on host:port (127.0.0.1 unless said). */
export async function listensOn(pid: number, port: number, host = '127.0.0.1'): Promise<boolean> {
  const sockets = await listeningSockets(port, host)
  if (sockets.size === 0) return false
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => [])
  for (const fd of fds) {
    if (sockets.has(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''))) return true
  }
  return false
}

/**
 * Polls until `owner()` names a process listening on 127.0.0.1:port, and returns its PID. A mere
 * connect is not proof: another process may hold the port and answer in its place, and Postfix
 * programs listen with SO_REUSEPORT, so a taken port does not even make them fail; they would
 * share the connections. Throws as soon as `proc` exits (a daemon that failed to start), when the
 * port has a second listener, or after timeoutMs.
 */
export async function waitForListener(
  proc: Started,
  port: number,
  owner: () => Promise<number | undefined>,
  timeoutMs: number,
  host = '127.0.0.1',
): Promise<number> {
  const deadline = Date.now() + timeoutMs
  let exited = false
  void proc.exited.then(() => (exited = true))
  for (;;) {
    if (exited) throw new Error(`process ${proc.pid} exited before listening on ${host}:${port}`)
    const pid = await owner()
    if (pid !== undefined && (await listensOn(pid, port, host))) {
      if ((await listeningSockets(port, host)).size > 1) throw new Error(`${host}:${port} has another listener besides process ${pid}`)
      return pid
    }
    if (Date.now() > deadline) throw new Error(`nothing of process ${proc.pid} listens on ${host}:${port} after ${timeoutMs} ms`)
    await sleep(50)
  }
}

async function readPidFile(path: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(path, 'utf8')).trim())
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

const START_TIMEOUT_MS = 60_000

export async function startPostfix(opts: PostfixOptions = {}): Promise<Postfix> {
  const set = opts.set ?? DEBIAN12_SET
  const dir = await mkdtemp(join(tmpdir(), 'mailhostd-postfix-'))
  // Daemons run as mail_owner and some (proxymap) open maps after dropping root: let them in.
  await chmod(dir, 0o755)
  const configDir = join(dir, 'etc')
  const logFile = join(dir, 'maillog')
  const env = { ...process.env, MAIL_CONFIG: configDir }
  let sh: Started | undefined
  let masterPid: number | undefined

  // The postfix command reports main.cf errors only to a tty or syslog, and the master's own
  // complaints go to the mail log. postmap reads the same main.cf and always writes to stderr.
  const diagnose = async () => {
    const log = await readFile(logFile, 'utf8').catch(() => '')
    const check = await set.run('postmap', ['-c', configDir, '-q', 'harness-probe', 'texthash:/dev/null'], { env })
    return [
      `postfix output:\n${sh?.output() ?? ''}`,
      `configuration check (postmap):\n${check.stderr}`,
      `mail log:\n${log.split('\n').slice(-40).join('\n')}`,
    ].join('\n')
  }

  try {
    const smtpPort = await freePort()
    await mkdir(configDir)
    // post-install fills the queue directory in, but it must exist (root-owned) beforehand.
    await mkdir(join(dir, 'spool'))
    for (const [name, text] of Object.entries(opts.files ?? {})) await writeFile(join(configDir, name), text)
    // A default the snippet or mainCf sets again is left out: Postfix would use the later line
    // anyway, but every daemon would log "overriding earlier entry" for it.
    const ownKeys = new Set([...parameterNames(opts.snippet ?? ''), ...Object.keys(opts.mainCf ?? {})])
    const defaults = Object.fromEntries(Object.entries(baseMainCf(dir)).filter(([k]) => !ownKeys.has(k)))
    const mainCf = [
      '# Written by test/harness/postfix.ts for one test run.',
      renderMainCf(defaults),
      opts.snippet ?? '',
      renderMainCf(opts.mainCf ?? {}),
      '',
    ].join('\n')
    await writeFile(join(configDir, 'main.cf'), mainCf)
    await writeFile(join(configDir, 'master.cf'), `${masterCf(smtpPort)}${opts.masterCf ?? ''}\n`)

    sh = set.start('postfix', ['-c', configDir, 'start-fg'], { env })
    const pidFile = join(dir, 'spool', 'pid', 'master.pid')
    try {
      masterPid = await waitForListener(sh, smtpPort, () => readPidFile(pidFile), START_TIMEOUT_MS)
      // The master opens every inet listener before it starts any daemon; check them anyway, so a
      // service entry that Postfix ignored fails here and not as a refused connection later.
      for (const port of inetServicePorts(opts.masterCf ?? '')) {
        await waitForListener(sh, port, () => readPidFile(pidFile), START_TIMEOUT_MS)
      }
    } catch (e) {
      throw new Error(`Postfix in ${dir} did not come up: ${(e as Error).message}\n${await diagnose()}`, { cause: e })
    }
    track(masterPid)
    return instance({ set, dir, configDir, logFile, env, smtpPort, pid: masterPid, sh })
  } catch (e) {
    if (masterPid !== undefined) await stopPid(masterPid)
    await sh?.stop()
    await rm(dir, { recursive: true, force: true })
    throw e
  }
}

function instance(p: {
  set: PeerSet
  dir: string
  configDir: string
  logFile: string
  env: NodeJS.ProcessEnv
  smtpPort: number
  pid: number
  sh: Started
}): Postfix {
  let stopping: Promise<void> | undefined
  const runIn = (cmd: string, args: readonly string[]) => p.set.run(cmd, ['-c', p.configDir, ...args], { env: p.env })
  const log = () => readFile(p.logFile, 'utf8').catch(() => '')

  const queue = async (): Promise<QueueEntry[]> => {
    const r = await p.set.mustRun('postqueue', ['-c', p.configDir, '-j'], { env: p.env })
    return r.stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as QueueEntry)
  }

  const stop = async (): Promise<void> => {
    const daemons = await processGroup(p.pid)
    await stopPid(p.pid, 'SIGTERM', 10_000)
    await p.sh.stop()
    // The master has already sent SIGTERM to its group; give the daemons a bounded moment.
    const deadline = Date.now() + 10_000
    for (const pid of daemons) {
      while ((await isRunning(pid)) && Date.now() < deadline) await sleep(25)
      if (await isRunning(pid)) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // exited between the check and the kill
        }
      }
    }
    await rm(p.dir, { recursive: true, force: true })
  }

  return {
    set: p.set,
    smtpPort: p.smtpPort,
    dir: p.dir,
    configDir: p.configDir,
    pid: p.pid,
    stop: () => (stopping ??= stop()),
    flush: async () => {
      await p.set.mustRun('postqueue', ['-c', p.configDir, '-f'], { env: p.env })
    },
    queue,
    waitForQueue: async (pred, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const entries = await queue()
        if (pred(entries)) return entries
        if (Date.now() > deadline) {
          throw new Error(`queue condition not met after ${timeoutMs} ms; queue: ${JSON.stringify(entries)}`)
        }
        await sleep(200)
      }
    },
    log,
    waitForLog: async (re, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const text = await log()
        re.lastIndex = 0
        const m = re.exec(text)
        if (m) return m
        if (Date.now() > deadline) {
          throw new Error(`no ${String(re)} in the mail log after ${timeoutMs} ms; log tail:\n${text.split('\n').slice(-40).join('\n')}`)
        }
        await sleep(100)
      }
    },
    processes: () => processGroup(p.pid),
    postconf: (args) => runIn('postconf', args),
    postmap: (args) => runIn('postmap', args),
    // As root, sendmail may use a non-default config directory (Postfix only restricts others to
    // alternate_config_directories); postdrop hands the file to this instance's pickup.
    sendmail: (from, to, message) =>
      p.set.run('sendmail', ['-C', p.configDir, '-i', '-f', from, '--', ...to], { env: p.env, input: message, timeoutMs: 30_000 }),
  }
}
