// The two peer sets the test suite runs against, declared once: scripts/install-peers.mjs
// prepares them, test/harness/peer-set.ts runs their programs.
//
// debian12: the machine's own packages (Postfix 3.7, Dovecot 2.3.19, OpenLDAP 2.5, nginx 1.22,
//   PostgreSQL 15, MariaDB 10.11), run directly.
// debian13: a Debian 13 (trixie) root made with debootstrap into a cache directory outside the
//   checkout (Postfix 3.10, Dovecot 2.4.1, OpenLDAP 2.6, nginx 1.26, PostgreSQL 17, MariaDB 11.8), its
//   programs run with chroot (scripts/in-root.sh) on the host's loopback.

import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

/** Where prepared roots live; kept across runs and checkouts. */
export const PEER_CACHE = process.env.MAILHOSTD_PEER_CACHE || '/var/cache/mailhostd-peers'

/**
 * The Debian 13 root. `packages` is what the root is made of: a cached root whose packages are a
 * subset of these gets the missing ones installed into it (packagesToAdd); any other change (a
 * package dropped, another suite) makes install-peers rebuild the root. Otherwise a cached root
 * is reused as it is.
 */
export const DEBIAN13 = Object.freeze({
  id: 'debian13',
  suite: 'trixie',
  root: join(PEER_CACHE, 'debian13'),
  packages: Object.freeze([
    'dovecot-core',
    'dovecot-imapd',
    'dovecot-pop3d',
    'dovecot-lmtpd',
    'dovecot-auth-lua',
    'lua-cjson',
    'postfix',
    'slapd',
    'ldap-utils',
    'nginx',
    'libnginx-mod-mail',
    'postgresql-17',
    // MariaDB for the SQL directory on databases a site already runs (IndiMail, PostfixAdmin,
    // iRedMail); the client runs fixtures.
    'mariadb-server',
    'mariadb-client',
  ]),
})

/** The file in a finished root that records what it was built from. */
export const STAMP = '.mailhostd-peer-root.json'

/** What a root built now would record: a cached root with a different stamp is rebuilt. */
export function wantedStamp(set = DEBIAN13) {
  return { suite: set.suite, packages: [...set.packages].sort() }
}

/** The stamp of the root at `root`, or undefined when there is none (not built, or half-built). */
export function readStamp(root = DEBIAN13.root) {
  try {
    return JSON.parse(readFileSync(join(root, STAMP), 'utf8'))
  } catch {
    return undefined
  }
}

export function isCurrent(root = DEBIAN13.root, set = DEBIAN13) {
  const have = readStamp(root)
  const want = wantedStamp(set)
  return have !== undefined && have.suite === want.suite && JSON.stringify([...(have.packages ?? [])].sort()) === JSON.stringify(want.packages)
}

/**
 * The packages a cached root lacks, when installing them is all it takes to make it current: same
 * suite, every package it has still wanted. An empty list for a current root; undefined when
 * the root must be built anew (none there, half-built, another suite, a package dropped).
 */
export function packagesToAdd(root = DEBIAN13.root, set = DEBIAN13) {
  const have = readStamp(root)
  const want = wantedStamp(set)
  if (have === undefined || have.suite !== want.suite || !Array.isArray(have.packages)) return undefined
  if (have.packages.some((p) => !want.packages.includes(p))) return undefined
  return want.packages.filter((p) => !have.packages.includes(p))
}

/**
 * The Debian archive this machine's apt uses (the first URI of a main archive, not
 * security), so the root comes from the same source; deb.debian.org when none is found.
 * MAILHOSTD_DEBIAN_MIRROR overrides it (a site's own mirror).
 */
export function debianMirror() {
  if (process.env.MAILHOSTD_DEBIAN_MIRROR) return process.env.MAILHOSTD_DEBIAN_MIRROR.replace(/\/$/, '')
  const files = ['/etc/apt/sources.list']
  const dir = '/etc/apt/sources.list.d'
  if (existsSync(dir)) files.push(...readdirSync(dir).filter((f) => /\.(list|sources)$/.test(f)).map((f) => join(dir, f)))
  for (const file of files) {
    let text
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      continue
    }
    // One-line form: deb [options] URI suite components
    for (const m of text.matchAll(/^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/gm)) {
      if (isMainArchive(m[1], m[2])) return m[1].replace(/\/$/, '')
    }
    // deb822 form: URIs: ... / Suites: ...
    for (const stanza of text.split(/\n\s*\n/)) {
      const uri = /^URIs:\s*(\S+)/im.exec(stanza)?.[1]
      const suite = /^Suites:\s*(\S+)/im.exec(stanza)?.[1]
      if (uri && suite && /^Types:.*\bdeb\b/im.test(stanza) && isMainArchive(uri, suite)) return uri.replace(/\/$/, '')
    }
  }
  return 'http://deb.debian.org/debian'
}

/** The release archive itself: not security, not -updates or -backports, not a third party's. */
function isMainArchive(uri, suite) {
  return /\/debian\/?$/.test(uri) && !/security/.test(uri) && /^(bookworm|trixie|stable|oldstable)$/.test(suite)
}
