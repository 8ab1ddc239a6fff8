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
import { mustRun, run, start, stopPid, track, type RunResult, type Started } from './process.js'
import { freePort } from './ports.js'

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
  /** main.cf parameters set last, so they win over the harness defaults and the snippet. */
  mainCf?: Record<string, string>
  /** main.cf text appended after the harness defaults (e.g. relayMainCf()). */
  snippet?: string
  /**
   * Files written into the config directory before Postfix starts, e.g. texthash tables; refer
   * to them from main.cf as `texthash:$config_directory/NAME`.
   */
  files?: Record<string, string>
}

export interface Postfix {
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
}

/** The relay front-end fragment shipped in postfix/relay-main.cf. */
export const RELAY_MAIN_CF = fileURLToPath(new URL('../../postfix/relay-main.cf', import.meta.url))

/**
 * postfix/relay-main.cf with only mailhostd's loopback ports replaced, so tests run the very text
 * that operators copy. tcp_table ports not given keep their defaults.
 */
export async function relayMainCf(ports: { socketmap: number; tcpTransport?: number; tcpRecipient?: number }): Promise<string> {
  const text = await readFile(RELAY_MAIN_CF, 'utf8')
  if (!text.includes('socketmap:inet:127.0.0.1:10040:')) {
    throw new Error(`${RELAY_MAIN_CF} no longer uses socketmap:inet:127.0.0.1:10040; update the harness`)
  }
  const replacement = new Map([
    ['10040', ports.socketmap],
    ['10041', ports.tcpTransport ?? 10041],
    ['10042', ports.tcpRecipient ?? 10042],
  ])
  return text.replace(/127\.0\.0\.1:(1004[012])(?!\d)/g, (_all, port: string) => `127.0.0.1:${replacement.get(port)}`)
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
    'scache unix - - n - 1 scache',
    'postlog unix-dgram n - n - 1 postlogd',
    '',
  ].join('\n')
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

/** Inodes ("socket:[N]") of the sockets listening on 127.0.0.1:port, from /proc/net/tcp. */
export async function listeningSockets(port: number): Promise<Set<string>> {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`
  const table = await readFile('/proc/net/tcp', 'utf8')
  return new Set(
    table
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .filter((f) => f[1] === local && f[3] === '0A')
      .map((f) => `socket:[${f[9]}]`),
  )
}

/** Whether process pid holds a socket listening on 127.0.0.1:port. */
export async function listensOn(pid: number, port: number): Promise<boolean> {
  const sockets = await listeningSockets(port)
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
): Promise<number> {
  const deadline = Date.now() + timeoutMs
  let exited = false
  void proc.exited.then(() => (exited = true))
  for (;;) {
    if (exited) throw new Error(`process ${proc.pid} exited before listening on 127.0.0.1:${port}`)
    const pid = await owner()
    if (pid !== undefined && (await listensOn(pid, port))) {
      if ((await listeningSockets(port)).size > 1) throw new Error(`127.0.0.1:${port} has another listener besides process ${pid}`)
      return pid
    }
    if (Date.now() > deadline) throw new Error(`nothing of process ${proc.pid} listens on 127.0.0.1:${port} after ${timeoutMs} ms`)
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
    const check = await run('postmap', ['-c', configDir, '-q', 'harness-probe', 'texthash:/dev/null'], { env })
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
    const mainCf = [
      '# Written by test/harness/postfix.ts for one test run.',
      renderMainCf(baseMainCf(dir)),
      opts.snippet ?? '',
      renderMainCf(opts.mainCf ?? {}),
      '',
    ].join('\n')
    await writeFile(join(configDir, 'main.cf'), mainCf)
    await writeFile(join(configDir, 'master.cf'), masterCf(smtpPort))

    sh = start('postfix', ['-c', configDir, 'start-fg'], { env })
    const pidFile = join(dir, 'spool', 'pid', 'master.pid')
    try {
      masterPid = await waitForListener(sh, smtpPort, () => readPidFile(pidFile), START_TIMEOUT_MS)
    } catch (e) {
      throw new Error(`Postfix in ${dir} did not come up: ${(e as Error).message}\n${await diagnose()}`, { cause: e })
    }
    track(masterPid)
    return instance({ dir, configDir, logFile, env, smtpPort, pid: masterPid, sh })
  } catch (e) {
    if (masterPid !== undefined) await stopPid(masterPid)
    await sh?.stop()
    await rm(dir, { recursive: true, force: true })
    throw e
  }
}

function instance(p: {
  dir: string
  configDir: string
  logFile: string
  env: NodeJS.ProcessEnv
  smtpPort: number
  pid: number
  sh: Started
}): Postfix {
  let stopping: Promise<void> | undefined
  const runIn = (cmd: string, args: readonly string[]) => run(cmd, ['-c', p.configDir, ...args], { env: p.env })
  const log = () => readFile(p.logFile, 'utf8').catch(() => '')

  const queue = async (): Promise<QueueEntry[]> => {
    const r = await mustRun('postqueue', ['-c', p.configDir, '-j'], { env: p.env })
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
    smtpPort: p.smtpPort,
    dir: p.dir,
    configDir: p.configDir,
    pid: p.pid,
    stop: () => (stopping ??= stop()),
    flush: async () => {
      await mustRun('postqueue', ['-c', p.configDir, '-f'], { env: p.env })
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
  }
}
