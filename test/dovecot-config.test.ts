// Each shipped dovecot/ file loads the way docs/dovecot.md tells an admin to install it, on the
// Dovecot of each peer set: the set's stock /etc/dovecot tree (Debian's dovecot.conf, conf.d/)
// copied to a temp dir, "!include auth-system.conf.ext" commented out in conf.d/10-auth.conf,
// the file installed as local.conf (and the files it includes, or that the install steps create,
// next to it: every /etc/dovecot/ path in the installed text points into the temp dir, nothing
// else changes), then the set's `doveconf -n` must exit 0 with nothing on stderr, and the
// settings that decide where logins and mail go must have the file's values, not the stock
// conf.d's (Debian 13's LMTP username format and mbox INBOX path would otherwise win). Dovecot
// 2.4's files must not set dovecot_config_version or dovecot_storage_version: the stock
// dovecot.conf sets them first, and 2.4 refuses any other first setting.

import t from 'tap'
import { cp, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { dovecotFiles, LUA_SCRIPT } from './harness/dovecot.js'
import { DEBIAN12_SET, DEBIAN13_SET, eachPeerSet, type PeerSet } from './harness/peer-set.js'

const DOVECOT_DIR = fileURLToPath(new URL('../dovecot/', import.meta.url))

interface Case {
  name: string
  /** Installed as local.conf. */
  local: string
  /** Installed under /etc/dovecot/<name> and, with `include`, "!include"d at the end of local.conf. */
  extra?: { file: string; as: string; include?: boolean }
  /** What `doveconf -n` must show when local.conf was read. */
  shows: RegExp
  /** Settings as a service sees them (`doveconf -f protocol=<p> <keys>`), stock conf.d included. */
  effective?: { protocol: string; expect: Record<string, string> }[]
}

function cases(set: PeerSet): Case[] {
  const f = dovecotFiles(set)
  const v24 = set.dovecot === '2.4'
  // Logins and LMTP recipients are looked up by the full address, lowercased.
  const fullAddress = v24 ? '%{user | lower}' : '%Lu'
  const backendMail = v24 ? { mail_driver: 'maildir', mail_path: '%{home}/Maildir', mail_inbox_path: '.' } : { mail_location: 'maildir:~/Maildir' }
  const list: Case[] = [
    {
      name: 'proxy-lua.conf',
      local: f.proxyLua,
      shows: v24 ? /^passdb lua \{\n\s+lua_file = \S+\/mailhostd\.lua$/m : /^\s+driver = lua$/m,
      effective: ['imap', 'pop3'].map((protocol) => ({ protocol, expect: { auth_username_format: fullAddress } })),
    },
    {
      name: 'backend.conf',
      local: f.backend,
      shows: v24 ? /^passdb passwd-file \{$/m : /^\s+driver = passwd-file$/m,
      effective: ['imap', 'pop3', 'lmtp'].map((protocol) => ({ protocol, expect: { auth_username_format: fullAddress, ...backendMail } })),
    },
    {
      name: 'backend.conf with auth-policy.conf',
      local: f.backend,
      extra: { file: f.authPolicy, as: 'mailhostd-auth-policy.conf', include: true },
      shows: v24 ? /^auth_policy \{[^}]*server_url = http:\/\/127\.0\.0\.1:10090\/v1\/dovecot\/policy/m : /^auth_policy_server_url = http:\/\/127\.0\.0\.1:10090\/v1\/dovecot\/policy$/m,
    },
  ]
  if (f.director) {
    list.push({
      name: 'proxy-lua.conf with director.conf',
      local: f.proxyLua,
      extra: { file: f.director, as: 'mailhostd-director.conf', include: true },
      // The members with their pool's tag, and logins handed to the director.
      shows: /^director_mail_servers = (\S+@pool1 ?)+$[\s\S]*^service imap-login \{\n\s+executable = imap-login director$/m,
    })
  }
  if (f.proxyDict && f.dictAuthExt) {
    list.push({ name: 'proxy-dict.conf', local: f.proxyDict, extra: { file: f.dictAuthExt, as: 'mailhostd-dict-auth.conf.ext' }, shows: /^\s+driver = dict$/m })
  }
  return list
}

/** The stock tree with `c` installed as documented; returns the dovecot.conf to check. */
async function install(set: PeerSet, dir: string, c: Case): Promise<string> {
  const etc = join(dir, 'etc-dovecot')
  await cp(set.path('/etc/dovecot'), etc, { recursive: true, verbatimSymlinks: true })
  const authConf = join(etc, 'conf.d', '10-auth.conf')
  const auth = await readFile(authConf, 'utf8')
  if (!/^!include auth-system\.conf\.ext$/m.test(auth)) throw new Error(`${set.label}: conf.d/10-auth.conf no longer includes auth-system.conf.ext as docs/dovecot.md says`)
  await writeFile(authConf, auth.replace(/^!include auth-system\.conf\.ext$/m, '#$&'))
  const here = (text: string) => text.replaceAll('/etc/dovecot/', `${etc}/`)
  let local = here(await readFile(c.local, 'utf8'))
  if (c.extra) {
    await writeFile(join(etc, c.extra.as), here(await readFile(c.extra.file, 'utf8')))
    if (c.extra.include) local += `\n!include ${etc}/${c.extra.as}\n`
  }
  await writeFile(join(etc, 'local.conf'), local)
  // The files the install steps create (the script, the secrets, the backend's users).
  await cp(LUA_SCRIPT, join(etc, 'mailhostd.lua'))
  await writeFile(join(etc, 'mailhostd.secret'), 'config-test-secret\n', { mode: 0o640 })
  await writeFile(join(etc, 'mailhostd-policy-header'), 'X-Auth-Key:config-test-secret', { mode: 0o640 })
  await writeFile(join(etc, 'users'), '', { mode: 0o640 })
  return join(etc, 'dovecot.conf')
}

t.test('every dovecot/ file is checked on the release it is for', async (t) => {
  const shipped = [
    ...(await readdir(DOVECOT_DIR)).filter((n) => /\.(conf|ext)$/.test(n)).map((n) => join(DOVECOT_DIR, n)),
    ...(await readdir(join(DOVECOT_DIR, '2.3'))).map((n) => join(DOVECOT_DIR, '2.3', n)),
  ]
  const checked = new Set([DEBIAN12_SET, DEBIAN13_SET].flatMap((s) => cases(s).flatMap((c) => [c.local, ...(c.extra ? [c.extra.file] : [])])))
  t.same(shipped.filter((f) => !checked.has(f)), [], 'no shipped file goes unchecked')
})

eachPeerSet(t, async (t, set) => {
  const stock = await readFile(set.path('/etc/dovecot/dovecot.conf'), 'utf8')
  if (set.dovecot === '2.4') {
    t.match(stock, /^dovecot_config_version = \S+$/m, 'the stock dovecot.conf sets dovecot_config_version (the shipped files rely on it)')
    t.match(stock, /^!include_try local\.conf$/m, 'and includes local.conf')
  }

  for (const c of cases(set)) {
    await t.test(c.name, async (t) => {
      if (set.dovecot === '2.4') {
        for (const file of [c.local, ...(c.extra ? [c.extra.file] : [])]) {
          t.notMatch(await readFile(file, 'utf8'), /^\s*dovecot_(config|storage)_version\b/m, `${file} leaves the versions to dovecot.conf`)
        }
      }
      const dir = await mkdtemp(join(tmpdir(), 'mailhostd-doveconf-'))
      t.teardown(() => rm(dir, { recursive: true, force: true }))
      const conf = await install(set, dir, c)
      const r = await set.run('doveconf', ['-n', '-c', conf], { timeoutMs: 30_000 })
      t.equal(r.code, 0, `doveconf -n exits 0:\n${r.stderr}`)
      t.equal(r.stderr, '', 'no warnings')
      t.match(r.stdout, c.shows, 'local.conf was read')
      for (const { protocol, expect } of c.effective ?? []) {
        const e = await set.run('doveconf', ['-c', conf, '-f', `protocol=${protocol}`, ...Object.keys(expect)], { timeoutMs: 30_000 })
        t.equal(e.code, 0, e.stderr)
        const got = Object.fromEntries(e.stdout.trim().split('\n').map((l) => l.split(' = ') as [string, string]))
        t.same(got, expect, `as ${protocol} sees them`)
      }
      if (set.dovecot === '2.4') {
        const settings = r.stdout.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'))
        t.match(settings[0], /^dovecot_config_version = \S+$/, "the first setting is the stock file's dovecot_config_version")
        t.ok(settings.some((l) => /^dovecot_storage_version = \S+$/.test(l)), 'and its dovecot_storage_version is set')
      }
    })
  }
})
