// The demo cluster's images are never built here (this machine has no Docker engine), but what
// they run is: each image is Debian 13's (FROM debian:trixie-slim), and so is the debian13 peer
// set's root (test/harness/peer-set.ts), with the same packages. So each image's configuration
// step runs inside that root with sh, exactly as its entrypoint (or build step) runs it, on:
//   - a copy of the files the image's COPY lines put under /usr/share/mailhostd (they keep their
//     repository paths, so the copy is made from the Dockerfile itself: a file a script needs but
//     the image does not copy fails here);
//   - a copy of the root's stock /etc/dovecot or /etc/postfix, as the packages leave it;
// and then Debian 13's own programs judge the result: doveconf and doveadm for the Dovecot proxy
// and backends, postconf for the Postfix front-end, slapadd and slapcat for OpenLDAP.
// cluster.test.ts then starts the containers' daemons from these files and sends mail through
// them. What neither can show without an engine: that the base images and apt give what the root
// has, and Docker's own networking.

import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { DEBIAN13 } from '../../scripts/peer-sets.mjs'
import { DEMO_MAIL_USERS } from '../harness/dovecot.js'
import { DEBIAN13_SET as SET } from '../harness/peer-set.js'
import type { RunResult } from '../harness/process.js'
import { address, dockerConfig, dockerfile, env, IMAGES, imageShare, instructions, read, SHARE, stockEtc, tempDir, type Image } from './images.js'
import { aptInstalls, debconfSelections, doveconfTree, sectionsOf, type DoveconfSection } from './parse.js'

/**
 * The entrypoint's configuration command (`sh SHARE/docker/IMAGE/assemble.sh SHARE ETC`) with the
 * image's paths replaced by the test's copies, run in the root as root.
 */
async function assemble(image: Image, share: string, etc: string, vars: Record<string, string>): Promise<RunResult> {
  const m = /^sh (\S+) (\S+) (\S+)$/m.exec(read(`docker/${image}/entrypoint.sh`))
  if (!m || m[2] !== SHARE || !m[1]!.startsWith(`${SHARE}/`)) throw new Error(`docker/${image}/entrypoint.sh: no "sh ${SHARE}/.../assemble.sh ${SHARE} ETC" line`)
  return SET.run('sh', [share + m[1]!.slice(SHARE.length), share, etc], { env: { ...process.env, ...vars } })
}

/**
 * Runs the entrypoint's configuration step as a first start and as a restart (the container's
 * /etc is kept): both must succeed silently and write the same `files` (relative to etc).
 */
async function assembleTwice(
  t: Test,
  image: Image,
  dirs: { share: string; etc: string },
  vars: Record<string, string>,
  files: readonly string[],
): Promise<void> {
  const first = await assemble(image, dirs.share, dirs.etc, vars)
  t.equal(first.code, 0, `assemble.sh exits 0: ${first.stderr}`)
  t.equal(first.stderr, '', 'assemble.sh: nothing on stderr')
  const written = files.map((f) => readFileSync(join(dirs.etc, f), 'utf8'))
  const again = await assemble(image, dirs.share, dirs.etc, vars)
  t.equal(again.code, 0, `assemble.sh runs again on a restart: ${again.stderr}`)
  t.same(
    files.map((f) => readFileSync(join(dirs.etc, f), 'utf8')),
    written,
    `and writes the same ${files.join(', ')}`,
  )
}

/** `doveconf ARGS -c ETC/dovecot.conf`, Debian 13's, parsed; fails the test on a non-zero exit or any warning. */
async function doveconf(t: Test, etc: string, args: readonly string[] = ['-n']): Promise<DoveconfSection> {
  const r = await SET.run('doveconf', [...args, '-c', join(etc, 'dovecot.conf')])
  t.equal(r.code, 0, `doveconf ${args.join(' ')} exits 0: ${r.stderr.trim()}`)
  t.equal(r.stderr.trim(), '', `doveconf ${args.join(' ')}: no warnings`)
  return doveconfTree(r.stdout)
}

/** The one value of `key` doveconf reports for the filter (protocol=lmtp): the setting as that service sees it. */
async function doveconfValue(etc: string, key: string, filter: string): Promise<string | undefined> {
  const r = await SET.run('doveconf', ['-c', join(etc, 'dovecot.conf'), '-f', filter, key])
  return doveconfTree(r.stdout).settings.get(key)
}

/** A file the assembled config names by its path in the image (/etc/dovecot/x), in the test's copy. */
function inCopy(t: Test, imagePath: string | undefined, imageEtc: string, copy: string): string {
  t.ok(imagePath?.startsWith(`${imageEtc}/`), `${imagePath} is in ${imageEtc}, where the entrypoint writes`)
  return join(copy, (imagePath ?? '').slice(imageEtc.length + 1))
}

function mode(file: string): { mode: number; uid: number; gid: number } {
  const s = statSync(file)
  return { mode: s.mode & 0o777, uid: s.uid, gid: s.gid }
}

/** Installed packages of the root, from its dpkg status file. */
function installedInRoot(): Set<string> {
  return new Set(
    readFileSync(SET.path('/var/lib/dpkg/status'), 'utf8')
      .split('\n\n')
      .filter((p) => /^Status: install ok installed$/m.test(p))
      .map((p) => /^Package: (\S+)$/m.exec(p)?.[1] ?? ''),
  )
}

t.test('every demo image is Debian 13, and installs packages and debconf answers Debian 13 has', async (t) => {
  const installed = installedInRoot()
  const templates = readFileSync(SET.path('/var/cache/debconf/templates.dat'), 'utf8').split('\n\n')
  for (const image of IMAGES) {
    const from = instructions(image).filter((i) => i.op === 'FROM')
    t.same(
      from.map((i) => i.args),
      [`debian:${DEBIAN13.suite}-slim`],
      `${dockerfile(image)}: one stage, FROM Debian 13 (the debian13 peer set's suite)`,
    )
    const packages = aptInstalls(instructions(image))
    t.ok(packages.length > 0, `${dockerfile(image)} installs packages`)
    for (const p of packages) t.ok(installed.has(p), `${dockerfile(image)}: ${p} is a Debian 13 package (installed in the peer root)`)
    for (const s of debconfSelections(instructions(image))) {
      const template = templates.find((x) => x.startsWith(`Name: ${s.question}\n`))
      t.ok(template, `${dockerfile(image)}:${s.line}: Debian 13 asks ${s.question}`)
      t.match(template, new RegExp(`^Type: ${s.type}$`, 'm'), `${s.question} is a ${s.type}`)
      if (s.type === 'select') {
        const choices = /^Choices: (.*)$/m.exec(template ?? '')?.[1]?.split(', ') ?? []
        t.ok(choices.includes(s.value), `${s.question}: "${s.value}" is one of ${choices.join(' | ')}`)
      }
    }
  }
})

t.test('the Dovecot proxy entrypoint: Debian 13 Dovecot 2.4 loads what it writes', async (t) => {
  const dir = tempDir(t, 'proxy')
  const share = join(dir, 'share')
  imageShare('dovecot-proxy', share)
  const etc = stockEtc('dovecot-proxy', '/etc/dovecot', dir)
  const vars = env('dovecot-proxy')
  await assembleTwice(t, 'dovecot-proxy', { share, etc }, vars, ['local.conf', 'conf.d/10-auth.conf', 'mailhostd.lua', 'mailhostd.secret'])

  const conf = await doveconf(t, etc)
  t.same(
    sectionsOf(conf, 'passdb').map((p) => p.name),
    ['lua'],
    'the Lua passdb is the only one: PAM and /etc/passwd do not answer (auth-system.conf.ext is out)',
  )
  t.same(sectionsOf(conf, 'userdb'), [], 'no userdb')
  const passdb = sectionsOf(conf, 'passdb', 'lua')[0]
  const lua = passdb ? sectionsOf(passdb, 'lua_settings')[0] : undefined
  t.ok(lua, 'the passdb has lua_settings')
  const script = inCopy(t, passdb?.settings.get('lua_file'), '/etc/dovecot', etc)
  t.equal(readFileSync(script, 'utf8'), read('dovecot/mailhostd.lua'), 'lua_file is dovecot/mailhostd.lua, verbatim')
  t.equal(mode(script).mode, 0o644, 'the script is 0644')

  const c = dockerConfig()
  const http = c.listen.http === false ? undefined : c.listen.http
  const url = new URL(lua?.settings.get('url') ?? 'http://invalid')
  t.equal(url.hostname, address('mailhostd'), "url: mailhostd's fixed address in the compose network")
  t.equal(Number(url.port), http?.port, "url: mailhostd's HTTP port (docker/mailhostd.yaml)")
  t.equal(vars.MAILHOSTD_ADDRESS, address('mailhostd'), 'the compose file gives the proxy that address')
  t.equal(lua?.settings.get('secret_header'), c.login.secretHeader, "secret_header is mailhostd's login.secretHeader")
  const secret = inCopy(t, lua?.settings.get('secret_file'), '/etc/dovecot', etc)
  t.equal(readFileSync(secret, 'utf8'), `${c.login.secret}\n`, "secret_file holds mailhostd's login.secret")
  t.same(mode(secret), { mode: 0o640, uid: 0, gid: SET.gid('dovecot') }, 'secret_file is root:dovecot 0640')
  t.equal(lua?.settings.get('mode'), 'verify', 'verify mode: mailhostd checks passwords (its login.lookupMode stays off)')

  t.equal(conf.settings.get('protocols'), 'imap pop3')
  t.equal(conf.settings.get('listen'), '*', 'listens on the container address (IPv4)')
  // Clients log in after STARTTLS: Debian's ssl = yes and its snakeoil certificate stay in force.
  t.notOk(conf.settings.has('ssl'), "ssl is Debian's default (yes)")
  t.notOk(conf.settings.has('auth_allow_cleartext'), 'auth_allow_cleartext is the default (no): no password without TLS')
  const cert = sectionsOf(conf, 'ssl_server')[0]?.settings.get('cert_file')
  const key = sectionsOf(conf, 'ssl_server')[0]?.settings.get('key_file')
  for (const f of [cert, key]) t.equal((await SET.run('test', ['-r', f ?? '/nonexistent'])).code, 0, `${f} exists in Debian 13 (made by ssl-cert at install)`)

  const services = await doveconf(t, etc, ['service/imap-login', 'service/pop3-login'])
  const port = (service: string, listener: string) =>
    sectionsOf(sectionsOf(services, 'service', service)[0] ?? services, 'inet_listener', listener)[0]?.settings.get('port')
  t.same([port('imap-login', 'imap'), port('pop3-login', 'pop3')], ['143', '110'], 'IMAP on 143 and POP3 on 110: what the Dockerfile exposes and compose publishes')
})

t.test('the Dovecot backend entrypoint: Debian 13 Dovecot 2.4 loads what it writes, for each backend', async (t) => {
  const c = dockerConfig()
  for (const b of c.backends) {
    t.test(b.id, async (t) => {
      const dir = tempDir(t, b.id)
      const share = join(dir, 'share')
      imageShare('dovecot-backend', share)
      const etc = stockEtc('dovecot-backend', '/etc/dovecot', dir)
      const vars = env(b.id)
      await assembleTwice(t, 'dovecot-backend', { share, etc }, vars, ['local.conf', 'conf.d/10-auth.conf', 'users'])

      const conf = await doveconf(t, etc)
      t.same(
        sectionsOf(conf, 'passdb').map((p) => p.name),
        ['passwd-file'],
        'the passwd-file is the only passdb: PAM and /etc/passwd do not answer',
      )
      t.same(
        sectionsOf(conf, 'userdb').map((p) => p.name),
        ['static'],
        'one static userdb',
      )
      const lmtp = sectionsOf(sectionsOf(conf, 'service', 'lmtp')[0] ?? conf, 'inet_listener', 'lmtp')[0]
      t.equal(lmtp?.settings.get('listen'), b.address, `LMTP listens on the backend's address (backends[].address ${b.address})`)
      t.equal(Number(lmtp?.settings.get('port')), b.ports.lmtp, 'on the port mailhostd routes mail to (backends[].ports.lmtp)')
      const services = await doveconf(t, etc, ['service/imap-login', 'service/pop3-login'])
      const port = (service: string, listener: string) =>
        Number(sectionsOf(sectionsOf(services, 'service', service)[0] ?? services, 'inet_listener', listener)[0]?.settings.get('port'))
      t.equal(port('imap-login', 'imap'), b.ports.imap, 'IMAP on the port the proxy is sent to (backends[].ports.imap)')
      t.equal(port('pop3-login', 'pop3'), b.ports.pop3, 'POP3 on backends[].ports.pop3')
      const trusted = conf.settings.get('login_trusted_networks')?.split(/\s+/) ?? []
      t.ok(trusted.includes(`${address('dovecot-proxy')}/32`), "the proxy's address is trusted: its plaintext logins and forwarded client addresses")
      t.equal(conf.settings.get('ssl'), 'no', 'no TLS inside the compose network')
      // Debian 13's 20-lmtp.conf would look recipients up by local part only.
      t.equal(await doveconfValue(etc, 'auth_username_format', 'protocol=lmtp'), '%{user | lower}', 'LMTP looks recipients up by their whole address')
      t.equal(conf.settings.get('mail_inbox_path'), '.', "INBOX is the Maildir's root, not Debian's /var/mail/%{user}")

      const users = inCopy(t, sectionsOf(conf, 'passdb', 'passwd-file')[0]?.settings.get('passwd_file_path'), '/etc/dovecot', etc)
      t.same(mode(users), { mode: 0o640, uid: 0, gid: SET.gid('dovecot') }, 'the passwd-file is root:dovecot 0640')
      const lines = readFileSync(users, 'utf8').trim().split('\n')
      const demo = DEMO_MAIL_USERS[b.id as keyof typeof DEMO_MAIL_USERS]
      t.same(
        lines.map((l) => l.split(':')[0]).sort(),
        demo.map((u) => u.user).sort(),
        `the demo accounts whose mailHost is ${vars.MAILHOST}, and no others`,
      )
      for (const u of demo) {
        const hash = lines.find((l) => l.startsWith(`${u.user}:`))?.slice(u.user.length + 1) ?? ''
        const r = await SET.run('doveadm', ['-c', join(etc, 'dovecot.conf'), 'pw', '-t', hash, '-p', u.password])
        t.equal(r.code, 0, `${u.user}: Debian 13's doveadm verifies the demo password against its passwd-file hash ${r.stderr.trim()}`)
      }
    })
  }
})

t.test('the Postfix entrypoint: Debian 13 Postfix 3.10 accepts what it writes', async (t) => {
  const dir = tempDir(t, 'postfix')
  const share = join(dir, 'share')
  imageShare('postfix', share)
  const etc = stockEtc('postfix', '/etc/postfix', dir)
  t.notOk(existsSync(join(etc, 'main.cf')), 'Debian 13 left no main.cf, as in the image ("No configuration")')
  const vars = env('postfix')
  await assembleTwice(t, 'postfix', { share, etc }, vars, ['main.cf', 'master.cf'])

  const main = await SET.run('postconf', ['-c', etc, '-n'])
  t.equal(main.code, 0, `postconf -n exits 0: ${main.stderr}`)
  t.equal(main.stderr.trim(), '', 'postconf -n: no warnings (unused or unknown parameters, bad master.cf entries)')
  const params = new Map(main.stdout.trim().split('\n').map((l) => l.split(' = ', 2) as [string, string]))
  const c = dockerConfig()
  const mailhostd = address('mailhostd')!
  t.equal(vars.MAILHOSTD_ADDRESS, mailhostd, "the compose file gives Postfix mailhostd's address")
  const lookups = [...main.stdout.matchAll(/inet:([\d.]+):(\d+)/g)].map((m) => ({ host: m[1], port: Number(m[2]) }))
  t.ok(lookups.length >= 4, 'the transport, recipient and alias maps and the policy service are mailhostd services')
  const ports = [c.listen.socketmap, c.listen.policy, ...c.listen.tcpTable].flatMap((l) => (l === false ? [] : [l.port]))
  for (const l of lookups) {
    t.equal(l.host, mailhostd, `${l.host}:${l.port} is mailhostd's address`)
    t.ok(ports.includes(l.port), `${l.port} is a listener of docker/mailhostd.yaml`)
  }
  t.notMatch(main.stdout, /127\.0\.0\.1:/, 'nothing still asks 127.0.0.1 for mailhostd')
  t.equal(params.get('maillog_file'), '/dev/stdout', 'logs go to the container output')

  const master = await SET.run('postconf', ['-c', etc, '-F', '*/*/chroot'])
  t.equal(master.code, 0, `postconf -F exits 0: ${master.stderr}`)
  t.same([...new Set(master.stdout.trim().split('\n').map((l) => l.split(' = ')[1]))], ['n'], 'no service runs chrooted')
  const postlog = await SET.run('postconf', ['-c', etc, '-M', 'postlog/unix-dgram'])
  t.match(postlog.stdout, /^postlog\s+unix-dgram\s.*\bpostlogd$/m, 'postlogd runs, for maillog_file')
})

t.test('the OpenLDAP build step: Debian 13 slapd 2.6 loads the demo directory with its configuration', async (t) => {
  const dir = tempDir(t, 'openldap')
  const share = join(dir, 'share')
  imageShare('openldap', share)
  const run = instructions('openldap').filter((i) => i.op === 'RUN' && /configure\.sh/.test(i.args))
  t.same(
    run.map((i) => i.args),
    [`sh ${SHARE}/docker/openldap/configure.sh`],
    'the image runs configure.sh at build time, with the default directories',
  )
  const paths = { SLAPD_ETC: join(dir, 'etc'), SLAPD_DATA: join(dir, 'data'), SLAPD_RUN: join(dir, 'run') }
  mkdirSync(paths.SLAPD_ETC)
  const r = await SET.run('sh', [join(share, 'docker/openldap/configure.sh')], { env: { ...process.env, MAILHOSTD_SHARE: share, ...paths } })
  t.equal(r.code, 0, `configure.sh exits 0 (slapadd loaded the demo directory): ${r.stderr}`)

  const conf = join(paths.SLAPD_ETC, 'slapd.conf')
  const test = await SET.run('slaptest', ['-u', '-f', conf])
  t.equal(test.code, 0, `slaptest accepts slapd.conf (modules pw-sha2 and back_mdb load): ${test.stderr}`)
  const dump = await SET.run('slapcat', ['-f', conf])
  t.equal(dump.code, 0, `slapcat reads the database: ${dump.stderr}`)
  const entries = (text: string) => [...text.matchAll(/^dn: (.*)$/gm)].map((m) => m[1]!.toLowerCase()).sort()
  t.same(entries(dump.stdout), entries(read('fixtures/ldap/demo.ldif')), 'every entry of fixtures/ldap/demo.ldif is in it')
  t.same(mode(conf), { mode: 0o640, uid: 0, gid: SET.gid('openldap') }, 'slapd.conf is root:openldap 0640 (it holds the rootpw)')
  t.equal(mode(join(paths.SLAPD_ETC, 'rootpw')).mode, 0o600, 'the rootdn password file is root-only')
  t.equal(mode(paths.SLAPD_DATA).uid, SET.ids('openldap').uid, 'the database belongs to openldap, the user slapd runs as')
})
