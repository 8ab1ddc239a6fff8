// The packaging files (Dockerfile, docker-compose.yml and the images under docker/, the systemd
// unit) are never built or started here: this machine has no Docker engine, and the unit would
// need a systemd. So they are checked against the repository and its single sources of truth:
// every file they copy or mount exists (and is committed, and not kept out by .dockerignore);
// every port is a config default or a port of docker/mailhostd.yaml, which itself validates
// with the daemon's own loader; every fixed address agrees between the compose network,
// mailhostd's backends and the shipped Postfix and Dovecot files; every image is on the Debian
// release of the debian13 peer set; the unit starts the package's bin and does not restart on
// the daemon's EX_CONFIG; and systemd itself accepts the unit. What the images' scripts write is
// run and checked with Debian 13's own programs in images.test.ts.

import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { BlockList, isIPv4 } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, posix, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse as parseYaml } from 'yaml'
import { loadConfigFile, validateConfig } from '../../src/config/load.js'
import type { Config } from '../../src/config/schema.js'
import { EX_CONFIG } from '../../src/exit-codes.js'
import { DEBIAN13 } from '../../scripts/peer-sets.mjs'
import { DEMO_ADMIN_DN, DEMO_ADMIN_PASSWORD, DEMO_BASE_DN, DEMO_BIND_DN, DEMO_BIND_PASSWORD } from '../harness/slapd.js'
import { copies, dockerfileInstructions, dockerignored, envSettings, finalStage, words, type Instruction } from './parse.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const at = (...p: string[]) => join(ROOT, ...p)
const read = (...p: string[]) => readFileSync(at(...p), 'utf8')

const COMPOSE_FILE = 'docker-compose.yml'
const DOCKER_CONFIG = 'docker/mailhostd.yaml'
const DEMO_CONFIG = 'fixtures/demo/mailhostd.yaml'
const UNIT = 'packaging/mailhostd.service'
/** The compose network every service is on. */
const NETWORK = 'cluster'

interface Service {
  build?: { context: string; dockerfile?: string }
  image?: string
  environment?: Record<string, string>
  volumes?: string[]
  ports?: string[]
  networks?: string[] | Record<string, { ipv4_address?: string } | null>
}
interface Compose {
  services: Record<string, Service>
  networks: Record<string, { ipam?: { config?: { subnet: string; ip_range?: string }[] } }>
  volumes: Record<string, unknown>
}

const compose = parseYaml(read(COMPOSE_FILE)) as Compose
const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string> }
const defaults = validateConfig({})
const dockerignore = read('.dockerignore')
const tracked = new Set(execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter(Boolean))

function service(name: string): Service {
  const s = compose.services[name]
  if (!s) throw new Error(`${COMPOSE_FILE} has no service ${name}`)
  return s
}
function env(name: string): Record<string, string> {
  return service(name).environment ?? {}
}
function fixedAddress(name: string): string | undefined {
  const n = service(name).networks
  return n && !Array.isArray(n) ? (n[NETWORK]?.ipv4_address ?? undefined) : undefined
}

/** Every listener port of a validated config (tcp_table entries included). */
function listenerPorts(c: Config): number[] {
  const l = c.listen
  return [l.socketmap, l.policy, l.http, ...l.tcpTable]
    .filter((x): x is { host: string; port: number } => x !== false)
    .map((x) => x.port)
    .sort((a, b) => a - b)
}
function listenerHosts(c: Config): string[] {
  const l = c.listen
  return [l.socketmap, l.policy, l.http, ...l.tcpTable].filter((x): x is { host: string; port: number } => x !== false).map((x) => x.host)
}
function httpPort(c: Config): number {
  if (c.listen.http === false) throw new Error('the HTTP listener is off')
  return c.listen.http.port
}

/** Is the path (relative to the repository) committed: a file, or a directory holding some? */
function isTracked(path: string): boolean {
  const p = posix.normalize(path).replace(/\/+$/, '')
  return tracked.has(p) || [...tracked].some((f) => f.startsWith(`${p}/`))
}

/** Every Dockerfile this repository builds: the daemon's and each compose service's. */
function dockerfiles(): { file: string; context: string }[] {
  return Object.values(compose.services)
    .filter((s) => s.build)
    .map((s) => ({ file: posix.join(s.build!.context, s.build!.dockerfile ?? 'Dockerfile'), context: s.build!.context }))
    .filter((d, i, all) => all.findIndex((o) => o.file === d.file) === i)
}
const instructionsOf = (file: string): Instruction[] => dockerfileInstructions(read(file))

t.test('the compose file builds every Dockerfile in the repository, from the repository root', async (t) => {
  const built = dockerfiles()
  for (const d of built) {
    t.ok(existsSync(at(d.file)), `${d.file} exists`)
    t.equal(posix.normalize(d.context), '.', `${d.file}: built from the repository root (it copies postfix/, dovecot/, fixtures/)`)
  }
  const underDocker = readdirSync(at('docker'), { recursive: true, encoding: 'utf8' })
    .filter((f) => f === 'Dockerfile' || f.endsWith('/Dockerfile'))
    .map((f) => posix.join('docker', f))
  const all = ['Dockerfile', ...underDocker].sort()
  t.same(built.map((d) => d.file).sort(), all, 'no Dockerfile is left out of the compose file')
})

const INSTRUCTIONS = ['FROM', 'RUN', 'CMD', 'LABEL', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL']

t.test('every Dockerfile instruction is a Docker instruction, and every exec form is valid JSON', async (t) => {
  for (const d of dockerfiles()) {
    for (const i of instructionsOf(d.file)) {
      t.ok(INSTRUCTIONS.includes(i.op), `${d.file}:${i.line}: ${i.op}`)
      const exec = i.op === 'HEALTHCHECK' ? i.args.slice(i.args.indexOf('CMD ') + 4) : i.args
      if (exec.startsWith('[')) t.doesNotThrow(() => words(exec), `${d.file}:${i.line}: ${i.op} is a JSON string array`)
    }
    t.ok(['FROM', 'ARG'].includes(instructionsOf(d.file)[0]?.op ?? ''), `${d.file} starts with FROM (or the ARG it uses)`)
  }
})

t.test('every COPY/ADD source exists, is committed and is not kept out by .dockerignore', async (t) => {
  for (const d of dockerfiles()) {
    const stages = new Set(instructionsOf(d.file).filter((i) => i.op === 'FROM').map((i) => /\bAS\s+(\S+)/i.exec(i.args)?.[1]))
    for (const c of copies(instructionsOf(d.file))) {
      if (c.from !== undefined) {
        t.ok(stages.has(c.from), `${d.file}:${c.line}: --from=${c.from} names a stage`)
        continue
      }
      for (const src of c.sources) {
        const path = posix.join(d.context, src)
        t.notMatch(src, /[*?[]/, `${d.file}:${c.line}: ${src} is a plain path (no wildcards to match nothing)`)
        t.ok(existsSync(at(path)), `${d.file}:${c.line}: ${path} exists`)
        t.ok(isTracked(path), `${d.file}:${c.line}: ${path} is in git (a clone has it)`)
        t.notOk(dockerignored(dockerignore, path), `${d.file}:${c.line}: ${path} is not in .dockerignore`)
      }
    }
  }
})

t.test('compose volumes: bind mounts exist, named volumes are declared', async (t) => {
  for (const [name, s] of Object.entries(compose.services)) {
    for (const v of s.volumes ?? []) {
      const [source] = v.split(':') as [string]
      if (source.startsWith('.') || source.startsWith('/')) {
        t.ok(existsSync(resolve(ROOT, source)), `${name}: ${source} exists`)
        t.ok(isTracked(relative(ROOT, resolve(ROOT, source))), `${name}: ${source} is in git (a clone has it)`)
      } else {
        t.ok(Object.hasOwn(compose.volumes, source), `${name}: volume ${source} is declared`)
      }
    }
  }
})

t.test('docker/mailhostd.yaml validates with the loader, given the environment the compose file sets', async (t) => {
  const c = loadConfigFile(at(DOCKER_CONFIG), env('mailhostd'))
  t.same(listenerPorts(c), listenerPorts(defaults), 'every listener on its default port: the shipped Postfix and Dovecot files name those')
  t.same([...new Set(listenerHosts(c))], ['0.0.0.0'], 'every listener on all addresses: 127.0.0.1 is unreachable from other containers')
  t.equal(c.listen.dict, false, 'no dict socket: the demo proxy uses the Lua passdb')

  // The same demo as `npm start`: domains, backends and tokens agree with the demo config.
  const demo = loadConfigFile(at(DEMO_CONFIG))
  t.same(c.domains, demo.domains, `domains as in ${DEMO_CONFIG}`)
  t.same(c.backends, demo.backends, `backends as in ${DEMO_CONFIG}`)
  t.same(c.admin.tokens, demo.admin.tokens, `admin tokens as in ${DEMO_CONFIG}`)

  // The directory is the openldap service, with the demo accounts' published passwords.
  const directory = c.directory
  t.equal(directory.type, 'ldap')
  if (directory.type !== 'ldap') return
  const ldap = directory.ldap
  t.equal(new URL(ldap.url).hostname, 'openldap')
  t.ok(compose.services.openldap, 'the LDAP URL names a compose service')
  t.equal(new URL(ldap.url).port || '389', '389', 'slapd listens on ldap:/// (389) in its container')
  t.match(ldap, { bindDN: DEMO_BIND_DN, bindPassword: DEMO_BIND_PASSWORD, baseDN: DEMO_BASE_DN })
  t.match(ldap.admin, { bindDN: DEMO_ADMIN_DN, bindPassword: DEMO_ADMIN_PASSWORD })

  // The store is the postgres service, with the user, password and database it was created with.
  const store = new URL(c.store.url!)
  const pg = env('postgres')
  t.equal(store.hostname, 'postgres')
  t.equal(decodeURIComponent(store.username), pg.POSTGRES_USER)
  t.equal(decodeURIComponent(store.password), pg.POSTGRES_PASSWORD)
  t.equal(store.pathname, `/${pg.POSTGRES_DB}`)

  // The Dovecot proxy sends the secret mailhostd expects.
  t.ok(c.login.secret.length > 0, 'login.secret is set: the login endpoints need it')
  t.equal(env('dovecot-proxy').LOGIN_SECRET, c.login.secret, "the proxy's LOGIN_SECRET is mailhostd's login.secret")
})

t.test('mailhostd in compose: the config file mounted where MAILHOSTD_CONFIG points, data in a volume at dataDir', async (t) => {
  const c = loadConfigFile(at(DOCKER_CONFIG), env('mailhostd'))
  const mounts = (service('mailhostd').volumes ?? []).map((v) => v.split(':') as [string, string, string?])
  const configMount = mounts.find(([src]) => posix.normalize(src) === DOCKER_CONFIG)
  t.ok(configMount, `${DOCKER_CONFIG} is mounted`)
  t.equal(env('mailhostd').MAILHOSTD_CONFIG, configMount?.[1], 'MAILHOSTD_CONFIG is where it is mounted')
  const dataMount = mounts.find(([, dst]) => dst === c.dataDir)
  t.ok(dataMount && !dataMount[0].startsWith('.'), `a named volume at dataDir (${c.dataDir})`)
  const volumes = finalStage(instructionsOf('Dockerfile')).filter((i) => i.op === 'VOLUME').flatMap((i) => words(i.args))
  t.same(volumes, [c.dataDir], "the image's volume is the compose config's dataDir")
})

t.test('ports: the Dockerfile exposes the config defaults, compose publishes the config ports as they are', async (t) => {
  const expose = finalStage(instructionsOf('Dockerfile'))
    .filter((i) => i.op === 'EXPOSE')
    .flatMap((i) => words(i.args))
    .map((p) => Number(p.replace(/\/tcp$/, '')))
    .sort((a, b) => a - b)
  t.same(expose, listenerPorts(defaults), 'EXPOSE lists every default listener port (src/config/schema.ts)')

  const c = loadConfigFile(at(DOCKER_CONFIG), env('mailhostd'))
  const published = (service('mailhostd').ports ?? []).map((p) => {
    const m = /^127\.0\.0\.1:(\d+):(\d+)$/.exec(p)
    t.ok(m, `${p}: published on the host's loopback only (the demo's secrets are public)`)
    return { host: Number(m?.[1]), container: Number(m?.[2]) }
  })
  t.same(
    published.map((p) => p.container).sort((a, b) => a - b),
    listenerPorts(c),
    `every listener of ${DOCKER_CONFIG} is published, and nothing else`,
  )
  for (const p of published) t.equal(p.host, p.container, `${p.container}: the same port on the host, so the README's postmap lines work`)
})

t.test('the image: entrypoint, health check, demo files and layout match the package', async (t) => {
  const stage = finalStage(instructionsOf('Dockerfile'))
  const workdir = stage.filter((i) => i.op === 'WORKDIR').at(-1)?.args
  const entrypoint = words(stage.find((i) => i.op === 'ENTRYPOINT')?.args ?? '[]')
  t.same(entrypoint, ['node', pkg.bin.mailhostd], "ENTRYPOINT runs package.json's bin, relative to WORKDIR")

  // What the built daemon reads next to dist/ at run time: package.json (src/version.ts) and
  // the demo served without a config (src/main.ts: fixtures/demo), plus the dependencies.
  const placed = copies(stage).flatMap((c) =>
    c.sources.map((src) => ({
      src,
      from: c.from,
      // COPY a/b dir/ puts b into dir; COPY a/b path puts it (or a directory's content) at path.
      at: c.dest.endsWith('/') || c.dest === '.' ? posix.join(posix.resolve(workdir!, c.dest), posix.basename(src)) : posix.resolve(workdir!, c.dest),
    })),
  )
  const bin = pkg.bin.mailhostd!
  for (const [src, path] of [
    ['package.json', 'package.json'],
    ['fixtures/demo', 'fixtures/demo'],
  ] as const) {
    t.ok(placed.some((p) => p.from === undefined && p.src === src && p.at === posix.join(workdir!, path)), `${src} copied to ${path}`)
  }
  for (const [stageName, path] of [
    ['build', bin.split('/')[0]!],
    ['deps', 'node_modules'],
  ] as const) {
    t.ok(placed.some((p) => p.from === stageName && p.at === posix.join(workdir!, path)), `${path} copied from stage ${stageName}`)
  }
  t.ok(stage.some((i) => i.op === 'USER' && i.args !== 'root' && i.args !== '0'), 'runs as a user other than root')

  const url = new URL(envSettings(stage).get('MAILHOSTD_HEALTHCHECK_URL') ?? '')
  t.equal(url.pathname, '/healthz')
  t.equal(Number(url.port), httpPort(defaults), "the health check asks the HTTP listener's default port")
  const health = stage.find((i) => i.op === 'HEALTHCHECK')?.args ?? ''
  const cmd = words(health.slice(health.indexOf('CMD ') + 4))
  t.same(cmd.slice(0, 2), ['node', '-e'], 'no curl or wget in the slim image: node itself')
  t.match(cmd[2], /process\.env\.MAILHOSTD_HEALTHCHECK_URL/)

  const unitStart = unitExecStart()
  t.equal(dirname(dirname(unitStart[1]!)), workdir, 'the image and the systemd unit install the package in the same place')
})

t.test('fixed addresses: the compose network, mailhostd.yaml, the front-ends and the shipped files agree', async (t) => {
  const net = compose.networks[NETWORK]?.ipam?.config?.[0]
  t.ok(net, `network ${NETWORK} has a subnet`)
  const subnet = new BlockList()
  const [base, bits] = net!.subnet.split('/') as [string, string]
  subnet.addSubnet(base, Number(bits))
  const dynamic = new BlockList()
  if (net!.ip_range) {
    const [b, n] = net!.ip_range.split('/') as [string, string]
    dynamic.addSubnet(b, Number(n))
  }
  const fixed = Object.keys(compose.services).flatMap((name) => {
    const a = fixedAddress(name)
    return a === undefined ? [] : [{ name, address: a }]
  })
  for (const { name, address } of fixed) {
    t.ok(isIPv4(address) && subnet.check(address), `${name}: ${address} is in ${net!.subnet}`)
    t.notOk(dynamic.check(address), `${name}: ${address} is outside ip_range, so no other container can take it`)
  }
  t.equal(new Set(fixed.map((f) => f.address)).size, fixed.length, 'no address is used twice')

  // Backends: service name = backend id; its address is the container's fixed one.
  const c = loadConfigFile(at(DOCKER_CONFIG), env('mailhostd'))
  for (const b of c.backends) {
    t.equal(fixedAddress(b.id), b.address, `backend ${b.id}: the ${b.id} container has address ${b.address}`)
    t.equal(env(b.id).BACKEND_ADDRESS, b.address, `${b.id}: its Dovecot listens for LMTP on that address`)
    t.ok([b.id, ...b.mailHosts].includes(env(b.id).MAILHOST ?? ''), `${b.id}: MAILHOST names this backend, so its users are the ones routed to it`)
  }

  // The front-ends reach mailhostd by its fixed address.
  const mailhostd = fixedAddress('mailhostd')
  t.ok(mailhostd, 'mailhostd has a fixed address')
  for (const front of ['postfix', 'dovecot-proxy']) t.equal(env(front).MAILHOSTD_ADDRESS, mailhostd, `${front} asks mailhostd at ${mailhostd}`)

  // The backends trust the proxy (plaintext logins, forwarded client addresses), as
  // dovecot/backend.conf lists it; and the front-end has the address the shipped files give it.
  const trustedLine = /^login_trusted_networks\s*=\s*(.*)$/m.exec(read('dovecot/backend.conf'))
  const trusted = new BlockList()
  for (const cidr of trustedLine![1]!.trim().split(/\s+/)) {
    const [a, n] = cidr.split('/') as [string, string?]
    trusted.addSubnet(a, Number(n ?? 32))
  }
  t.ok(trusted.check(fixedAddress('dovecot-proxy')!), "the proxy is in dovecot/backend.conf's login_trusted_networks")
  t.match(read('postfix/backend-main.cf'), `[${fixedAddress('postfix')!}]:25`, 'the front-end has the address postfix/backend-main.cf relays to')
})

t.test('the configuration scripts rewrite strings the shipped files contain, and fill every template token', async (t) => {
  // test/packaging/images.test.ts runs each assemble.sh for real, on Debian 13; this names the
  // string and the file when one is gone, without needing the peer root.
  for (const d of dockerfiles().filter((x) => x.file.startsWith('docker/'))) {
    const dir = dirname(d.file)
    const script = join(dir, 'assemble.sh')
    if (!existsSync(at(script))) continue
    const copied = copies(instructionsOf(d.file))
      .filter((c) => c.from === undefined)
      .flatMap((c) => c.sources)
      .filter((s) => !s.startsWith('docker/'))
      .flatMap((s) => (statSync(at(s)).isDirectory() ? readdirSync(at(s)).map((f) => join(s, f)) : [s]))
    const calls = [...read(script).matchAll(/^\s*rewrite\s+\S+\s+'([^']+)'/gm)].map((m) => m[1]!)
    t.ok(calls.length > 0, `${script} rewrites something`)
    for (const from of calls) {
      t.ok(
        copied.some((f) => read(f).includes(from)),
        `${script}: '${from}' is in a shipped file the image copies (${copied.join(', ')})`,
      )
    }
    t.match(read(join(dir, 'entrypoint.sh')), `sh /usr/share/mailhostd/${script} /usr/share/mailhostd `, `${dir}/entrypoint.sh runs ${script}`)
  }

  const tokens = new Set([...read('fixtures/ldap/slapd.conf.template').matchAll(/@@([A-Z_]+)@@/g)].map((m) => m[1]!))
  const filled = new Set([...read('docker/openldap/configure.sh').matchAll(/s\|@@([A-Z_]+)@@\|/g)].map((m) => m[1]!))
  t.same([...filled].sort(), [...tokens].sort(), 'docker/openldap/configure.sh fills exactly the tokens of slapd.conf.template')
})

t.test('the images are Debian 13, the release of the debian13 peer set', async (t) => {
  const nodeImage = /^NODE_IMAGE=(\S+)$/.exec(instructionsOf('Dockerfile').find((i) => i.op === 'ARG')?.args ?? '')?.[1]
  t.equal(nodeImage, `node:24-${DEBIAN13.suite}-slim`, 'mailhostd: Node.js 24 (LTS) on Debian 13, slim')
  t.same(
    instructionsOf('Dockerfile')
      .filter((i) => i.op === 'FROM')
      .map((i) => i.args.split(/\s+/)[0]),
    ['${NODE_IMAGE}', '${NODE_IMAGE}', '${NODE_IMAGE}'],
    'every stage uses NODE_IMAGE, so --build-arg NODE_IMAGE=node:24-bookworm-slim gives the Debian 12 variant',
  )
  const pgMajor = DEBIAN13.packages.map((p) => /^postgresql-(\d+)$/.exec(p)?.[1]).find(Boolean)
  t.ok(pgMajor, 'the debian13 peer set has a PostgreSQL server')
  t.equal(service('postgres').image, `postgres:${pgMajor}-${DEBIAN13.suite}`, "the store is the PostgreSQL the debian13 peers test, on Debian 13")
  for (const d of dockerfiles().filter((x) => x.file.startsWith('docker/'))) {
    t.same(
      instructionsOf(d.file)
        .filter((i) => i.op === 'FROM')
        .map((i) => i.args),
      [`debian:${DEBIAN13.suite}-slim`],
      `${d.file} is FROM Debian 13`,
    )
  }
})

function unitExecStart(): string[] {
  const line = /^ExecStart=(.*)$/m.exec(read(UNIT))
  if (!line) throw new Error(`${UNIT} has no ExecStart`)
  return line[1]!.trim().split(/\s+/)
}

t.test('the systemd unit starts the package bin and does not restart on a bad configuration', async (t) => {
  const unit = read(UNIT)
  const setting = (key: string) => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!.trim())
  const [node, main, ...args] = unitExecStart()
  t.equal(node, '/usr/bin/node')
  t.equal(main, posix.join('/opt/mailhostd', pkg.bin.mailhostd!), "ExecStart runs package.json's bin mailhostd")
  t.same(args, ['--config', '/etc/mailhostd/mailhostd.yaml'])
  t.same(setting('RestartPreventExitStatus'), [String(EX_CONFIG)], "RestartPreventExitStatus is the daemon's EX_CONFIG")
  t.same(setting('Restart'), ['on-failure'])
  t.same(setting('User'), ['mailhostd'])
  t.same(setting('MemoryDenyWriteExecute'), ['no'], "V8's JIT needs writable, then executable memory")
  t.equal(setting('ExecReload').at(-1), '/bin/kill -HUP $MAINPID')

  // Dovecot 2.3's dict passdb (2.4 has none) connects to /run/mailhostd/dict.sock: inside the
  // unit's RuntimeDirectory.
  const dictUri = /^uri = proxy:[^/]*(\/[^:]+):/m.exec(read('dovecot/2.3/dovecot-dict-auth.conf.ext'))
  t.equal(dirname(dictUri![1]!), posix.join('/run', setting('RuntimeDirectory')[0]!), "the dict socket's directory is the unit's RuntimeDirectory")
  t.same(setting('StateDirectory'), ['mailhostd'], 'dataDir /var/lib/mailhostd is the StateDirectory')
  t.equal(loadConfigFile(at(DOCKER_CONFIG), env('mailhostd')).dataDir, '/var/lib/mailhostd', 'the same data directory as the image')
})

t.test('systemd-analyze verify accepts the unit', async (t) => {
  // The unit names /usr/bin/node; this machine's node may live elsewhere, and verify checks that
  // the binary exists, so the copy verified names this process's node instead.
  const dir = mkdtempSync(join(tmpdir(), 'mailhostd-unit-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const copy = join(dir, 'mailhostd.service')
  writeFileSync(copy, read(UNIT).replaceAll('/usr/bin/node ', `${process.execPath} `))
  const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8', timeout: 60_000 })
  t.equal(r.error, undefined, 'systemd-analyze runs (Debian package systemd)')
  t.equal(r.status, 0, `systemd-analyze verify exit status; output:\n${r.stdout}${r.stderr}`)
  t.equal(r.stderr.trim(), '', 'no warnings (unknown keys, bad values)')
})
