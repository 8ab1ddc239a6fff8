// Throwaway nginx mail proxies for tests: nginx/mail.conf as shipped, rewritten only for the
// listen ports, mailhostd's auth_http port and the secret file, inside an nginx.conf that loads
// the mail module and keeps pid and logs in a temp dir. The system nginx (/etc/nginx,
// /var/log/nginx) is never touched: `-e` moves even the error log nginx opens before it reads
// its config.
//
// With `daemon off` the process spawned here is the master; it holds the listening sockets
// (workers inherit them), so the instance is up when the master listens on every port. stop()
// sends SIGTERM (fast shutdown) to the master and then reaps any worker left.

import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { track, type Started } from './process.js'
import { DEBIAN12_SET, type PeerSet } from './peer-set.js'
import { freePorts } from './ports.js'
import { waitForListener } from './postfix.js'
import { rewrite } from './dovecot.js'
import { descendants, forget, removeOnExit, stopTree } from './process-tree.js'

export const MAIL_CONF = fileURLToPath(new URL('../../nginx/mail.conf', import.meta.url))
// A path in the peer set (Debian 12 and 13 alike).
const MAIL_MODULE = '/usr/lib/nginx/modules/ngx_mail_module.so'

export interface NginxOptions {
  /** Whose nginx: Debian 12's (1.22, default) or Debian 13's (1.26). */
  set?: PeerSet
  /** The auth_http server's port on 127.0.0.1 (mailhostd's HTTP listener, or a test responder). */
  authHttpPort: number
  /** What auth_http_header sends as X-Auth-Key. */
  secret: string
  /** error_log at debug level (this nginx is built --with-debug) instead of info. */
  debug?: boolean
  /**
   * Directives added at the top of nginx/mail.conf's mail block, for what the shipped file
   * leaves out on purpose, e.g. `resolver 127.0.0.1:PORT;` (SMTP sessions then resolve the
   * client's name and send it as Client-Host).
   */
  mailDirectives?: readonly string[]
}

export interface Nginx {
  readonly pid: number
  readonly dir: string
  readonly ports: { imap: number; pop3: number; smtp: number }
  readonly logFiles: readonly string[]
  log(): Promise<string>
  waitForLog(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>
  /** Stops the master and its workers, removes the temp dir. Idempotent. */
  stop(): Promise<void>
}

/** nginx/mail.conf with the listen ports, auth_http port and secret include rewritten. */
export async function mailConf(p: { imap: number; pop3: number; smtp: number; authHttpPort: number; keyFile: string }): Promise<string> {
  let text = await readFile(MAIL_CONF, 'utf8')
  for (const [from, to] of [[143, p.imap], [110, p.pop3], [25, p.smtp]] as const) {
    text = rewrite(text, MAIL_CONF, new RegExp(`^(\\s*)listen ${from};$`, 'm'), `        listen 127.0.0.1:${to};`)
  }
  text = rewrite(text, MAIL_CONF, 'auth_http 127.0.0.1:10090/', `auth_http 127.0.0.1:${p.authHttpPort}/`)
  return rewrite(text, MAIL_CONF, 'include /etc/nginx/mailhostd-auth-key.conf;', `include ${p.keyFile};`)
}

/** `directives` as the first lines inside the mail block. */
function withMailDirectives(conf: string, directives: readonly string[]): string {
  if (directives.length === 0) return conf
  return rewrite(conf, MAIL_CONF, /^mail \{$/m, ['mail {', ...directives.map((d) => `    ${d}`)].join('\n'))
}

/** An nginx string in double quotes: backslash and quote escaped. */
const quoted = (s: string) => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`

export async function startNginx(o: NginxOptions): Promise<Nginx> {
  const dir = await mkdtemp(join(tmpdir(), 'mailhostd-nginx-'))
  removeOnExit(dir)
  await chmod(dir, 0o755)
  const errorLog = join(dir, 'error.log')
  let proc: Started | undefined
  try {
    const [imap, pop3, smtp] = (await freePorts(3)) as [number, number, number]
    const keyFile = join(dir, 'mailhostd-auth-key.conf')
    await writeFile(keyFile, `auth_http_header X-Auth-Key ${quoted(o.secret)};\n`, { mode: 0o600 })
    const conf = [
      '# Written by test/harness/nginx.ts for one test run.',
      `load_module ${MAIL_MODULE};`,
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${errorLog} ${o.debug ? 'debug' : 'info'};`,
      'worker_processes 1;',
      'events {',
      '    worker_connections 256;',
      '}',
      `# ---- ${MAIL_CONF} (rewritten)`,
      withMailDirectives(await mailConf({ imap, pop3, smtp, authHttpPort: o.authHttpPort, keyFile }), o.mailDirectives ?? []),
    ].join('\n')
    const confFile = join(dir, 'nginx.conf')
    await writeFile(confFile, conf)
    proc = (o.set ?? DEBIAN12_SET).start('nginx', ['-p', `${dir}/`, '-e', errorLog, '-c', confFile, '-g', 'daemon off;'])
    const ports = { imap, pop3, smtp }
    try {
      for (const port of Object.values(ports)) await waitForListener(proc, port, async () => proc!.pid, 20_000)
    } catch (e) {
      const log = await readFile(errorLog, 'utf8').catch(() => '(no error log)')
      throw new Error(`nginx in ${dir} did not come up: ${(e as Error).message}\noutput:\n${proc.output()}\nerror log:\n${log}`, { cause: e })
    }
    // Workers outlive a SIGKILLed master: if the test process dies, process.ts's exit hook
    // (which kills tracked PIDs) must know them too.
    for (const worker of await descendants(proc.pid)) track(worker)
    return instance(dir, errorLog, ports, proc)
  } catch (e) {
    if (proc) await stopTree(proc)
    forget(dir)
    await rm(dir, { recursive: true, force: true })
    throw e
  }
}


function instance(dir: string, errorLog: string, ports: Nginx['ports'], proc: Started): Nginx {
  let stopping: Promise<void> | undefined
  const log = () => readFile(errorLog, 'utf8').catch(() => '')
  return {
    pid: proc.pid,
    dir,
    ports,
    logFiles: [errorLog],
    log,
    waitForLog: async (re, timeoutMs = 15_000) => {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const text = await log()
        const m = new RegExp(re.source, re.flags.replace('g', '')).exec(text)
        if (m) return m
        if (Date.now() > deadline) throw new Error(`no ${String(re)} in the nginx error log after ${timeoutMs} ms`)
        await sleep(100)
      }
    },
    stop: () =>
      (stopping ??= (async () => {
        await stopTree(proc)
        forget(dir)
        await rm(dir, { recursive: true, force: true })
      })()),
  }
}
