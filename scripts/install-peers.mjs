#!/usr/bin/env node
// `npm test` needs real peers (slapd, PostgreSQL, Postfix, Dovecot, nginx, Chromium) from two
// Debian releases (scripts/peer-sets.mjs). This prepares both, as root:
// - debian12: installs the machine's missing Debian packages, with `apt-get update` first, and
//   keeps the packages' own system services from starting (the tests start throwaway instances
//   on loopback);
// - debian13: builds the Debian 13 root with debootstrap into the cache directory, unless a
//   current one is there (scripts/debian13-root.mjs).
// When a peer is missing and we are not root, it fails loudly: tests never silently skip.

import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs'
import { ensureDebian13Root } from './debian13-root.mjs'

/** Each peer: the Debian package and a file that proves it is installed. */
const PEERS = [
  { pkg: 'slapd', probe: () => existsSync('/usr/sbin/slapd') && existsSync('/usr/sbin/slapadd') },
  { pkg: 'ldap-utils', probe: () => existsSync('/usr/bin/ldapmodify') },
  { pkg: 'postfix', probe: () => ['/usr/sbin/postfix', '/usr/sbin/postmap', '/usr/sbin/smtp-sink'].every(existsSync) },
  // Postfix's own ldap: table, the peer npm run bench compares the socketmap against.
  { pkg: 'postfix-ldap', probe: () => existsSync('/usr/lib/postfix/postfix-ldap.so') },
  { pkg: 'postgresql', probe: () => postgresBin() !== undefined },
  // MariaDB, for the SQL directory on a site's own MySQL/MariaDB tables; the client runs fixtures.
  { pkg: 'mariadb-server', probe: () => ['/usr/sbin/mariadbd', '/usr/bin/mariadb-install-db'].every(existsSync) },
  { pkg: 'mariadb-client', probe: () => existsSync('/usr/bin/mariadb') },
  // Dovecot proxies and backends (IMAP, POP3, LMTP), with the Lua passdb and its JSON module.
  { pkg: 'dovecot-core', probe: () => ['/usr/sbin/dovecot', '/usr/bin/doveadm'].every(existsSync) },
  { pkg: 'dovecot-imapd', probe: () => existsSync('/usr/lib/dovecot/imap') },
  { pkg: 'dovecot-pop3d', probe: () => existsSync('/usr/lib/dovecot/pop3') },
  { pkg: 'dovecot-lmtpd', probe: () => existsSync('/usr/lib/dovecot/lmtp') },
  { pkg: 'dovecot-auth-lua', probe: () => existsSync('/usr/lib/dovecot/modules/auth/libauthdb_lua.so') },
  { pkg: 'lua-cjson', probe: () => existsSync('/usr/lib/x86_64-linux-gnu/lua/5.4/cjson.so') || existsSync('/usr/lib/aarch64-linux-gnu/lua/5.4/cjson.so') },
  // mkpasswd (SHA-crypt test vectors from an independent implementation).
  { pkg: 'whois', probe: () => existsSync('/usr/bin/mkpasswd') },
  // nginx with its mail proxy module.
  { pkg: 'nginx', probe: () => existsSync('/usr/sbin/nginx') },
  { pkg: 'libnginx-mod-mail', probe: () => existsSync('/usr/lib/nginx/modules/ngx_mail_module.so') },
  // Headless Chromium for the status page test (playwright-core drives it; its own browser
  // download does not work offline), and a font, without which Chromium renders no text.
  { pkg: 'chromium', probe: () => existsSync('/usr/bin/chromium') },
  { pkg: 'fonts-dejavu-core', probe: () => existsSync('/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf') },
  // systemd-analyze verify checks packaging/mailhostd.service (installing it starts nothing).
  { pkg: 'systemd', probe: () => existsSync('/usr/bin/systemd-analyze') },
  // Builds the debian13 peer set's root.
  { pkg: 'debootstrap', probe: () => existsSync('/usr/sbin/debootstrap') },
]

function postgresBin() {
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return undefined
  const versions = readdirSync(root).filter((v) => existsSync(`${root}/${v}/bin/postgres`) && existsSync(`${root}/${v}/bin/initdb`))
  return versions.length ? `${root}/${versions.sort((a, b) => Number(b) - Number(a))[0]}/bin` : undefined
}

const missing = PEERS.filter((p) => !p.probe()).map((p) => p.pkg)
if (missing.length > 0) installMissing(missing)
try {
  await ensureDebian13Root()
} catch (e) {
  console.error(`install-peers: debian13: ${e.message}`)
  process.exit(1)
}

function installMissing(missing) {
  const isRoot = process.getuid?.() === 0
  if (!isRoot) {
    console.error(`install-peers: missing Debian packages: ${missing.join(' ')}`)
    console.error(`install-peers: run as root, or: sudo apt-get update && sudo apt-get install -y ${missing.join(' ')}`)
    process.exit(1)
  }

  console.error(`install-peers: installing ${missing.join(' ')} (apt-get)`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  // Postfix asks which mail setup to create; "No configuration" leaves /etc/postfix alone.
  execFileSync('debconf-set-selections', { input: 'postfix postfix/main_mailer_type select No configuration\n', env, stdio: ['pipe', 'inherit', 'inherit'] })

  // invoke-rc.d consults policy-rc.d: exit 101 means "do not start services". Only add one for
  // the duration of the install when the machine has none of its own.
  const POLICY = '/usr/sbin/policy-rc.d'
  const ownPolicy = !existsSync(POLICY)
  if (ownPolicy) writeFileSync(POLICY, '#!/bin/sh\n# mailhostd test setup: keep package services stopped\nexit 101\n', { mode: 0o755 })
  try {
    for (const args of [['update'], ['install', '-y', '--no-install-recommends', ...missing]]) {
      const r = spawnSync('apt-get', args, { env, stdio: 'inherit' })
      if (r.status !== 0) {
        console.error(`install-peers: apt-get ${args.join(' ')} failed (exit ${r.status})`)
        process.exit(1)
      }
    }
  } finally {
    if (ownPolicy) unlinkSync(POLICY)
  }

  const still = PEERS.filter((p) => !p.probe()).map((p) => p.pkg)
  if (still.length > 0) {
    console.error(`install-peers: still missing after install: ${still.join(' ')}`)
    process.exit(1)
  }
  console.error('install-peers: debian12 peers installed')
}
