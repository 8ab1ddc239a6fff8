// The demo cluster's mail path, run without a Docker engine. The Postfix, Dovecot proxy and two
// Dovecot backend containers are each started from their entrypoint in the Debian 13 peer root
// (the release their images are built FROM), and mailhostd with docker/mailhostd.yaml, each in a
// network namespace of its own with its compose address, all joined by a bridge as compose joins
// them. What a container sees of its image is recreated in a private mount namespace: the files
// its COPY lines put in /usr/share/mailhostd, Debian 13's stock /etc/dovecot or /etc/postfix for
// the entrypoint to write to, the users its Dockerfile adds, and a writable /var over the root's
// (an overlay), so the root itself is never written to. Then the demo docs/operations.md tells
// users to try is tried: mail in through Postfix, routed by mailhostd, delivered over LMTP, read
// back through the proxy with the demo passwords after STARTTLS.
//
// What still differs from compose: the OpenLDAP and PostgreSQL containers are replaced by the demo
// directory in mailhostd's embedded store (the same accounts, fixtures/demo; images.test.ts loads
// the OpenLDAP image's directory with Debian 13's slapd); mailhostd runs from this checkout's
// dist/, not from its image; and clients connect from the bridge's own address, as connections
// to published ports arrive.

import { chownSync, closeSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request as httpRequest } from 'node:http'
import { connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { parse as parseYaml, stringify } from 'yaml'
import { DEMO_MAIL_USERS } from '../harness/dovecot.js'
import { LineReader } from '../harness/imap-client.js'
import { READ_TOKEN } from '../harness/admin-api.js'
import { MAIN } from '../harness/mailhostd.js'
import { DEBIAN13_SET as SET } from '../harness/peer-set.js'
import { mustRun, start, type Started } from '../harness/process.js'
import { stopTree } from '../harness/process-tree.js'
import { address, at, compose, dockerConfig, env, imageShare, instructions, makeDir, read, SHARE, stockEtc, tempDir, type Image } from './images.js'

const IN_ROOT = fileURLToPath(new URL('../../scripts/in-root.sh', import.meta.url))
const DEMO_SQL = at('fixtures/demo/directory.sql')
const START_TIMEOUT_MS = 60_000

/**
 * start(), with the process killed by the kernel if this test process dies first (a tap timeout,
 * a kill): the namespaces, overlays and binds then go with it. The signal survives the execs of
 * nsenter, unshare, in-root.sh and the entrypoint down to the daemon itself.
 */
const startBound = (cmd: string, args: readonly string[], opts?: Parameters<typeof start>[2]) =>
  start('setpriv', ['--pdeathsig', 'KILL', '--', cmd, ...args], opts)
const IO_TIMEOUT_MS = 30_000

/** The compose network's prefix length and the bridge's own address (its first host, as Docker picks). */
function subnet(): { bits: number; gateway: string } {
  const net = compose.networks.cluster?.ipam?.config?.[0]?.subnet
  if (!net) throw new Error('docker-compose.yml: the cluster network has no subnet')
  const [base, bits] = net.split('/') as [string, string]
  const octets = base.split('.').map(Number)
  octets[3] = octets[3]! + 1
  return { bits: Number(bits), gateway: octets.join('.') }
}

/**
 * A process that only holds a new network namespace (sleep), returned once the namespace is
 * verified to be a new one: every `ip` command below runs in it, never in the host's.
 */
async function netnsHolder(t: Test): Promise<Started> {
  const proc = startBound('unshare', ['--net', '--', 'sleep', 'infinity'])
  t.teardown(() => proc.stop('SIGKILL'))
  const hostNs = readlinkSync('/proc/self/ns/net')
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    try {
      if (readFileSync(`/proc/${proc.pid}/comm`, 'utf8').trim() === 'sleep' && readlinkSync(`/proc/${proc.pid}/ns/net`) !== hostNs) return proc
    } catch {
      // not there yet, or already gone: the deadline decides
    }
    await sleep(10)
  }
  throw new Error(`unshare --net did not give process ${proc.pid} a network namespace of its own:\n${proc.output()}`)
}

const netnsArgs = (holder: Started) => [`--net=/proc/${holder.pid}/ns/net`, '--']
const ip = (holder: Started, ...args: string[]) => mustRun('nsenter', [...netnsArgs(holder), 'ip', ...args])

/** Whether a socket listens on `port` in the holder's namespace (its /proc/PID/net/tcp). */
function listens(holder: Started, port: number): boolean {
  const hex = port.toString(16).toUpperCase().padStart(4, '0')
  return readFileSync(`/proc/${holder.pid}/net/tcp`, 'utf8')
    .split('\n')
    .slice(1)
    .some((l) => {
      const f = l.trim().split(/\s+/)
      return f[1]?.endsWith(`:${hex}`) && f[3] === '0A'
    })
}

async function waitForPorts(holder: Started, c: Container, ports: readonly number[], what: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS
  let exited = false
  void c.proc.exited.then(() => (exited = true))
  while (!ports.every((p) => listens(holder, p))) {
    if (exited || Date.now() > deadline) throw new Error(`${what} does not listen on ${ports.join(', ')}:\n${c.output()}`)
    await sleep(100)
  }
}

/** The compose network: a bridge (with the gateway address) in a namespace of its own, and one namespace per service at its fixed address. */
async function network(t: Test, services: readonly string[]): Promise<{ bridge: Started; member: Map<string, Started> }> {
  const { bits, gateway } = subnet()
  const bridge = await netnsHolder(t)
  await ip(bridge, 'link', 'add', 'br0', 'type', 'bridge')
  await ip(bridge, 'addr', 'add', `${gateway}/${bits}`, 'dev', 'br0')
  await ip(bridge, 'link', 'set', 'br0', 'up')
  const member = new Map<string, Started>()
  for (const [i, name] of services.entries()) {
    const holder = await netnsHolder(t)
    await ip(bridge, 'link', 'add', `veth${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', String(holder.pid))
    await ip(bridge, 'link', 'set', `veth${i}`, 'master', 'br0', 'up')
    await ip(holder, 'addr', 'add', `${address(name)}/${bits}`, 'dev', 'eth0')
    await ip(holder, 'link', 'set', 'eth0', 'up')
    await ip(holder, 'link', 'set', 'lo', 'up')
    member.set(name, holder)
  }
  return { bridge, member }
}

// Runs in the container's own mount namespace, before in-root.sh: the image's view of the root.
const MOUNTS = `set -eu
root=$1 box=$2 etc=$3 etccopy=$4 inroot=$5 tmp=$6
shift 6
mount --bind "$etccopy" "$root$etc"
mount --bind "$box/passwd" "$root/etc/passwd"
mount --bind "$box/group" "$root/etc/group"
mount -t tmpfs tmpfs "$root/run"
mount -t overlay overlay -o "lowerdir=$root/var,upperdir=$box/var,workdir=$box/var-work" "$root/var"
exec sh "$inroot" "$root" '' / "$tmp" -- "$@"
`

/** The users a Dockerfile adds (groupadd -g GID NAME, useradd -u UID -g GROUP -d HOME [-m] ... NAME). */
function imageUsers(image: Image): { groups: string[]; users: string[]; homes: { path: string; uid: number; gid: number }[] } {
  const run = instructions(image)
    .filter((i) => i.op === 'RUN')
    .map((i) => i.args)
    .join(' && ')
  const gids = new Map([...run.matchAll(/groupadd -g (\d+) (\S+)/g)].map((m) => [m[2]!, Number(m[1])]))
  const out: ReturnType<typeof imageUsers> = { groups: [...gids].map(([name, gid]) => `${name}:x:${gid}:`), users: [], homes: [] }
  for (const m of run.matchAll(/useradd -u (\d+) -g (\S+) -d (\S+) (-m )?-s (\S+) (\S+)/g)) {
    const gid = gids.get(m[2]!)
    if (gid === undefined) throw new Error(`${image}: useradd names group ${m[2]}, which no groupadd makes`)
    out.users.push(`${m[6]}:x:${m[1]}:${gid}::${m[3]}:${m[5]}`)
    if (m[4]) out.homes.push({ path: m[3]!, uid: Number(m[1]), gid })
  }
  return out
}

interface Container {
  proc: Started
  /** Everything the container wrote to its stdout and stderr so far. */
  output(): string
}

/** Starts one container of the demo cluster from its entrypoint, in the service's namespace. */
async function container(t: Test, holder: Started, service: string, image: Image, etc: '/etc/dovecot' | '/etc/postfix'): Promise<Container> {
  const box = makeDir(service)
  const running: { proc?: Started } = {}
  // Stopped before its directory goes: the overlay and the binds live on it.
  t.teardown(async () => {
    if (running.proc) await stopTree(running.proc)
    rmSync(box, { recursive: true, force: true })
  })
  const share = join(box, 'share')
  imageShare(image, share)
  const etcCopy = stockEtc(image, etc, box)
  const { groups, users, homes } = imageUsers(image)
  writeFileSync(join(box, 'passwd'), readFileSync(SET.path('/etc/passwd'), 'utf8') + users.map((u) => `${u}\n`).join(''))
  writeFileSync(join(box, 'group'), readFileSync(SET.path('/etc/group'), 'utf8') + groups.map((g) => `${g}\n`).join(''))
  mkdirSync(join(box, 'var'))
  mkdirSync(join(box, 'var-work'))
  for (const h of homes) {
    if (!h.path.startsWith('/var/')) throw new Error(`${image}: home ${h.path} is outside /var, which is all the container may write`)
    mkdirSync(join(box, h.path), { recursive: true })
    chownSync(join(box, h.path), h.uid, h.gid)
  }
  // The entrypoint as the image has it, reading the image's files from the copy.
  const entrypoint = join(box, 'entrypoint.sh')
  writeFileSync(entrypoint, read(`docker/${image}/entrypoint.sh`).replaceAll(SHARE, share))
  // The container's output goes to a file: Postfix opens maillog_file = /dev/stdout, which works
  // on the pipe Docker gives a container but not on the socket Node would.
  const log = join(box, 'output.log')
  const fd = openSync(log, 'a')
  const proc = startBound(
    'nsenter',
    [...netnsArgs(holder), 'unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', MOUNTS, 'mounts', SET.path(''), box, etc, etcCopy, IN_ROOT, tmpdir(), 'sh', entrypoint],
    { env: { ...process.env, ...env(service) }, stdio: ['ignore', fd, fd] },
  )
  running.proc = proc
  closeSync(fd)
  return { proc, output: () => readFileSync(log, 'utf8') }
}

/** mailhostd with docker/mailhostd.yaml and its environment, the demo directory standing in for OpenLDAP and PostgreSQL. */
async function mailhostd(t: Test, holder: Started): Promise<Started> {
  const newest = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((m, e) => Math.max(m, e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs), 0)
  if (newest(at('src')) > statSync(MAIN).mtimeMs + 1000) throw new Error('dist/ is older than src/: run `npm run build`')
  const dir = makeDir('mailhostd')
  const running: { proc?: Started } = {}
  t.teardown(async () => {
    await running.proc?.stop()
    rmSync(dir, { recursive: true, force: true })
  })
  const config = parseYaml(read('docker/mailhostd.yaml')) as Record<string, unknown>
  delete config.store
  const file = join(dir, 'mailhostd.yaml')
  writeFileSync(file, stringify({ ...config, dataDir: join(dir, 'data'), directory: { type: 'sql' } }))
  const daemon = startBound('nsenter', [...netnsArgs(holder), process.execPath, MAIN, '--config', file, '--seed-sql', DEMO_SQL], {
    env: { ...process.env, ...env('mailhostd') },
    cwd: dir,
  })
  running.proc = daemon
  const deadline = Date.now() + START_TIMEOUT_MS
  while (!daemon.output().includes('"msg":"mailhostd ready"')) {
    if (daemon.child.exitCode !== null || Date.now() > deadline) throw new Error(`mailhostd did not start:\n${daemon.output()}`)
    await sleep(100)
  }
  return daemon
}

/**
 * Connections from the bridge's address (where published ports come from), through a forwarder
 * in the bridge's namespace listening on a Unix socket per service port: Unix sockets do not
 * belong to a network namespace, so this test process can reach the cluster through them.
 */
const FORWARDER = `const net = require('node:net')
const routes = JSON.parse(process.argv[1])
let listening = 0
for (const r of routes) {
  net.createServer((c) => {
    const u = net.connect({ host: r.host, port: r.port })
    c.pipe(u).pipe(c)
    u.on('error', () => c.destroy())
    c.on('error', () => u.destroy())
  }).listen(r.path, () => { if (++listening === routes.length) console.log('forwarding') })
}`

async function forwarder(t: Test, bridge: Started, routes: Record<string, { host: string; port: number }>): Promise<(name: string) => Promise<Socket>> {
  const dir = tempDir(t, 'clients')
  const list = Object.entries(routes).map(([name, r]) => ({ ...r, path: join(dir, `${name}.sock`) }))
  const proc = startBound('nsenter', [...netnsArgs(bridge), process.execPath, '-e', FORWARDER, JSON.stringify(list)])
  t.teardown(() => proc.stop())
  const deadline = Date.now() + START_TIMEOUT_MS
  while (!proc.output().includes('forwarding')) {
    if (proc.child.exitCode !== null || Date.now() > deadline) throw new Error(`the forwarder did not start:\n${proc.output()}`)
    await sleep(50)
  }
  return (name) =>
    new Promise((resolve, reject) => {
      const s = netConnect(join(dir, `${name}.sock`))
      s.once('connect', () => resolve(s))
      s.once('error', reject)
    })
}

/** A line-protocol session: send a line, read lines until one matches; STARTTLS/STLS upgrades it. */
class Session {
  private reader: LineReader
  constructor(private socket: Socket) {
    this.reader = new LineReader(socket, IO_TIMEOUT_MS, 'mail')
  }
  async until(last: RegExp): Promise<string[]> {
    const lines: string[] = []
    for (;;) {
      const line = await this.reader.line()
      lines.push(line)
      if (last.test(line)) return lines
    }
  }
  async command(line: string, last: RegExp): Promise<string[]> {
    this.socket.write(`${line}\r\n`)
    return this.until(last)
  }
  /** TLS over the connection as it is (the server's self-signed snakeoil certificate accepted). */
  async tls(): Promise<void> {
    this.socket.removeAllListeners('data')
    this.socket.removeAllListeners('close')
    this.socket.removeAllListeners('error')
    const secure = tlsConnect({ socket: this.socket, rejectUnauthorized: false })
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve)
      secure.once('error', reject)
    })
    this.socket = secure
    this.reader = new LineReader(secure, IO_TIMEOUT_MS, 'mail over TLS')
  }
  close(): void {
    this.socket.destroy()
  }
}

/** One HTTP GET over a forwarded connection: status and body. */
function httpGet(socket: Socket, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ createConnection: () => socket, path, headers: { host: 'mailhostd', connection: 'close', ...headers }, timeout: IO_TIMEOUT_MS }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer within ${IO_TIMEOUT_MS} ms`)))
    req.on('error', reject)
    req.end()
  })
}

const smtpLast = /^\d{3} /
const tagged = (tag: string) => new RegExp(`^${tag} `)

t.test('the demo cluster on Debian 13: mail in through Postfix, delivered over LMTP, read through the Dovecot proxy', async (t) => {
  await SET.mustRun('true', []) // a clear failure when the debian13 root is missing or out of date
  const c = dockerConfig()
  const backends = c.backends.map((b) => b.id)
  const { bridge, member } = await network(t, ['mailhostd', 'postfix', 'dovecot-proxy', ...backends])
  const ns = (name: string) => member.get(name)!

  const mx = new Map<string, Container>()
  for (const b of c.backends) {
    const proc = await container(t, ns(b.id), b.id, 'dovecot-backend', '/etc/dovecot')
    await waitForPorts(ns(b.id), proc, [b.ports.lmtp, b.ports.imap, b.ports.pop3], `${b.id} (Dovecot backend)`)
    mx.set(b.id, proc)
  }
  const daemon = await mailhostd(t, ns('mailhostd'))
  const proxy = await container(t, ns('dovecot-proxy'), 'dovecot-proxy', 'dovecot-proxy', '/etc/dovecot')
  await waitForPorts(ns('dovecot-proxy'), proxy, [143, 110], 'the Dovecot proxy')
  const postfix = await container(t, ns('postfix'), 'postfix', 'postfix', '/etc/postfix')
  await waitForPorts(ns('postfix'), postfix, [25], 'Postfix')
  const open = await forwarder(t, bridge, {
    smtp: { host: address('postfix')!, port: 25 },
    imap: { host: address('dovecot-proxy')!, port: 143 },
    pop3: { host: address('dovecot-proxy')!, port: 110 },
    http: { host: address('mailhostd')!, port: 10090 },
  })

  const [alice] = DEMO_MAIL_USERS.mx1
  const [bob] = DEMO_MAIL_USERS.mx2
  const subject = `demo cluster ${Date.now()}`

  await t.test("mailhostd's HTTP port (on 0.0.0.0) as the host reaches it: probes open, lookups, metrics and the OpenAPI document with the read token only", async (t) => {
    const get = async (path: string, token?: string) => httpGet(await open('http'), path, token === undefined ? {} : { authorization: `Bearer ${token}` })
    t.equal((await get('/healthz')).status, 200, '/healthz needs no token (the image HEALTHCHECK)')
    t.equal((await get('/readyz')).status, 200, '/readyz needs no token (load balancers)')
    const lookup = `/v1/lookup?map=transport&key=${encodeURIComponent(alice!.user)}`
    for (const path of [lookup, '/metrics', '/v1/openapi.json']) {
      const refused = await get(path)
      t.equal(refused.status, 401, `${path}: no token, no answer`)
      t.notMatch(refused.body, /lmtp:|mailhostd_lookups_total|openapi/, `${path}: and nothing of it in the refusal`)
      t.equal((await get(path, 'not-a-token')).status, 401, `${path}: an unknown token is refused`)
      t.equal((await get(path, READ_TOKEN)).status, 200, `${path}: the demo read token opens it`)
    }
    t.match(JSON.parse((await get(lookup, READ_TOKEN)).body), { outcome: 'found' }, `${alice!.user} found with the token`)
  })

  await t.test('Postfix takes mail for a demo mailbox and refuses an unknown one (550, from mailhostd)', async (t) => {
    const s = new Session(await open('smtp'))
    t.match((await s.until(smtpLast)).at(-1), /^220 /, 'greeting')
    t.match((await s.command('EHLO client.example', smtpLast)).at(-1), /^250 /)
    t.match((await s.command('MAIL FROM:<someone@example.net>', smtpLast)).at(-1), /^250 /)
    t.match((await s.command(`RCPT TO:<${alice!.user}>`, smtpLast)).at(-1), /^250 /, `${alice!.user}: accepted`)
    t.match((await s.command('RCPT TO:<nobody@example.org>', smtpLast)).at(-1), /^550 /, 'nobody@example.org: 550, not in the mail cluster')
    t.match((await s.command('DATA', smtpLast)).at(-1), /^354 /)
    t.match((await s.command(`Subject: ${subject}\r\n\r\nfrom the demo\r\n.`, smtpLast)).at(-1), /^250 /, 'queued')
    await s.command('QUIT', smtpLast)
    s.close()
  })

  await t.test("IMAP through the proxy: STARTTLS, the demo password, and the message in alice's mailbox on mx1", async (t) => {
    const s = new Session(await open('imap'))
    const greeting = (await s.until(/^\* /))[0]
    t.match(greeting, /STARTTLS/, 'STARTTLS offered')
    t.match(greeting, /LOGINDISABLED/, 'no LOGIN before TLS')
    t.match((await s.command('a STARTTLS', tagged('a'))).at(-1), /^a OK/)
    await s.tls()
    t.match((await s.command(`b LOGIN ${alice!.user} wrong-password`, tagged('b'))).at(-1), /^b NO \[AUTHENTICATIONFAILED\]/, 'a wrong password is refused')
    t.match((await s.command(`c LOGIN ${alice!.user} ${alice!.password}`, tagged('c'))).at(-1), /^c OK/, 'logged in through mailhostd to the backend')
    // Postfix delivers from its queue: wait for the LMTP delivery.
    const deadline = Date.now() + IO_TIMEOUT_MS
    let status = ''
    for (let i = 0; Date.now() < deadline; i++) {
      status = (await s.command(`s${i} STATUS INBOX (MESSAGES)`, tagged(`s${i}`)))[0] ?? ''
      if (!/MESSAGES 0\)/.test(status)) break
      await sleep(250)
    }
    t.match(status, /MESSAGES 1\)/, 'the message delivered over LMTP is there')
    t.match((await s.command('d SELECT INBOX', tagged('d'))).at(-1), /^d OK/)
    const fetched = await s.command('e FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]', tagged('e'))
    t.ok(fetched.some((l) => l === `Subject: ${subject}`), 'with the Subject sent to Postfix')
    await s.command('f LOGOUT', tagged('f'))
    s.close()
  })

  await t.test("POP3 through the proxy: STLS and bob's mailbox on mx2", async (t) => {
    const s = new Session(await open('pop3'))
    t.match((await s.until(/^[+-]/)).at(-1), /^\+OK/)
    t.match((await s.command('STLS', /^[+-]/)).at(-1), /^\+OK/)
    await s.tls()
    t.match((await s.command(`USER ${bob!.user}`, /^[+-]/)).at(-1), /^\+OK/)
    t.match((await s.command(`PASS ${bob!.password}`, /^[+-]/)).at(-1), /^\+OK/, 'logged in')
    t.match((await s.command('STAT', /^[+-]/)).at(-1), /^\+OK 0 0/, 'an empty mailbox: the mail went to alice on mx1')
    await s.command('QUIT', /^[+-]/)
    s.close()
  })

  // Each login reached the backend holding the mailbox, which saw the client's own address:
  // the proxy is in backend.conf's login_trusted_networks, so it forwards it.
  const { gateway } = subnet()
  for (const [id, user] of [
    ['mx1', alice!.user],
    ['mx2', bob!.user],
  ] as const) {
    t.match(mx.get(id)!.output(), new RegExp(`Logged in: user=<${user.replace('.', '\\.')}>[^\\n]*rip=${gateway.replaceAll('.', '\\.')}`), `${id}: ${user} logged in, from the client's address`)
  }
  t.match(mx.get('mx1')!.output(), /saved mail to INBOX/, 'mx1 delivered the message over LMTP')
  t.notMatch(mx.get('mx2')!.output(), new RegExp(`user=<${alice!.user.replace('.', '\\.')}>`), 'mx2 never saw alice')
  for (const [what, out] of [
    ['mailhostd', daemon.output()],
    ['proxy', proxy.output()],
    ['postfix', postfix.output()],
    ...[...mx].map(([id, p]) => [id, p.output()] as const),
  ] as const) {
    for (const secret of [alice!.password, bob!.password, env('dovecot-proxy').LOGIN_SECRET!]) t.notOk(out.includes(secret), `${what}: no password or secret in the log`)
  }
})
