// Builds the debian13 peer set: a Debian 13 (trixie) root made with debootstrap from this
// machine's Debian archive, with the peers installed, into the cache directory of
// scripts/peer-sets.mjs. Reused as long as its stamp matches the package list; when the list only
// grew, the new packages are installed into the cached root (a minute, not a rebuild); rebuilt
// from scratch on any other change. Needs root (debootstrap, chroot, mounts).
//
// Bounded: the archive is probed first (a clear message when it cannot be reached), and every
// step has a time limit. The root is built under a temporary name and renamed into place only
// once complete, so a build that is killed or fails leaves no root that looks usable; its
// remains are removed by the next build. Mounts (/proc, /dev inside the root while apt runs)
// are made in a private mount namespace (unshare), so they vanish with the build's processes
// whatever happens to them.

import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync, copyFileSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DEBIAN13, PEER_CACHE, STAMP, debianMirror, isCurrent, packagesToAdd, readStamp, wantedStamp } from './peer-sets.mjs'

const IN_ROOT = fileURLToPath(new URL('./in-root.sh', import.meta.url))
const PROBE_TIMEOUT_MS = 30_000
const DEBOOTSTRAP_TIMEOUT_MS = 15 * 60_000
const APT_TIMEOUT_MS = 15 * 60_000

class BuildError extends Error {}

function step(what, cmd, args, timeoutMs, env = {}) {
  const started = Date.now()
  console.error(`install-peers: debian13: ${what}`)
  const r = spawnSync(cmd, args, {
    stdio: ['ignore', 'inherit', 'inherit'],
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C', ...env },
  })
  if (r.error?.code === 'ETIMEDOUT' || (r.signal === 'SIGKILL' && Date.now() - started >= timeoutMs - 1000)) {
    throw new BuildError(`${what}: no result after ${Math.round(timeoutMs / 60_000)} min; gave up (is the Debian archive slow or unreachable?)`)
  }
  if (r.error) throw new BuildError(`${what}: ${r.error.message}`)
  if (r.status !== 0) throw new BuildError(`${what}: ${cmd} exited ${r.status ?? r.signal}`)
  console.error(`install-peers: debian13: ${what}: done in ${Math.round((Date.now() - started) / 1000)} s`)
}

/** Fails fast, with the URL, when the archive does not serve the suite's release file. */
async function probeArchive(mirror, suite) {
  const url = `${mirror}/dists/${suite}/InRelease`
  try {
    const res = await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) })
    if (!res.ok) throw new Error(`HTTP ${res.status}`)
  } catch (e) {
    throw new BuildError(`the Debian archive is unreachable: ${url}: ${e.cause?.message ?? e.message}`)
  }
}

/** Runs a command inside the half-built root (mounts in a private namespace). */
function inRoot(what, root, args, timeoutMs) {
  step(what, 'sh', [IN_ROOT, root, '', '/', '--', ...args], timeoutMs, {
    MAILHOSTD_IN_ROOT_BUILDING: '1',
  })
}

/**
 * Installs `packages` into the cached root, in place. Its stamp goes first and comes back only
 * once apt is done: a run killed half-way leaves a root that is not used and is rebuilt next time
 * (dpkg may be left mid-configure, which no later apt-get install would get past).
 */
async function addPackages(root, packages) {
  const mirror = debianMirror()
  await probeArchive(mirror, DEBIAN13.suite)
  const started = Date.now()
  const stamp = readStamp(root)
  unlinkSync(join(root, STAMP))
  // A root built before the policy existed would start the new packages' services.
  writeFileSync(join(root, 'usr/sbin/policy-rc.d'), '#!/bin/sh\n# mailhostd peer root: no package services\nexit 101\n', { mode: 0o755 })
  inRoot('apt-get update', root, ['apt-get', 'update'], APT_TIMEOUT_MS)
  inRoot(`apt-get install ${packages.join(' ')}`, root, ['apt-get', 'install', '-y', '--no-install-recommends', ...packages], APT_TIMEOUT_MS)
  inRoot('apt-get clean', root, ['apt-get', 'clean'], 60_000)
  const added = [...(stamp.added ?? []), { packages, mirror, at: new Date().toISOString() }]
  writeFileSync(join(root, STAMP), `${JSON.stringify({ ...stamp, ...wantedStamp(), added }, null, 2)}\n`)
  console.error(`install-peers: debian13: added ${packages.join(' ')} to ${root} (${Math.round((Date.now() - started) / 1000)} s)`)
}

/** Makes sure the debian13 root exists and is current. Returns its path. */
export async function ensureDebian13Root() {
  const root = DEBIAN13.root
  if (isCurrent(root)) return root
  if (process.getuid?.() !== 0) {
    throw new BuildError(`${root} is missing or out of date and building it needs root: run node scripts/install-peers.mjs as root`)
  }
  const toAdd = packagesToAdd(root)
  if (toAdd !== undefined && toAdd.length > 0) {
    try {
      await addPackages(root, toAdd)
      return root
    } catch (e) {
      throw new BuildError(`adding ${toAdd.join(' ')} to ${root}: ${e.message} (the root is rebuilt on the next run)`)
    }
  }
  for (const tool of ['/usr/sbin/debootstrap', '/usr/bin/unshare', '/usr/sbin/chroot']) {
    if (!existsSync(tool)) throw new BuildError(`${tool} is missing (apt-get install debootstrap)`)
  }
  const mirror = debianMirror()
  await probeArchive(mirror, DEBIAN13.suite)

  const started = Date.now()
  mkdirSync(PEER_CACHE, { recursive: true })
  const building = `${root}.building`
  rmSync(building, { recursive: true, force: true })
  try {
    step(`debootstrap ${DEBIAN13.suite} from ${mirror}`, 'debootstrap', ['--variant=minbase', DEBIAN13.suite, building, mirror], DEBOOTSTRAP_TIMEOUT_MS)
    copyFileSync('/etc/resolv.conf', join(building, 'etc/resolv.conf'))
    // Package services must not start in the root (the tests start their own instances).
    writeFileSync(join(building, 'usr/sbin/policy-rc.d'), '#!/bin/sh\n# mailhostd peer root: no package services\nexit 101\n', { mode: 0o755 })
    // Postfix's "No configuration" leaves /etc/postfix without a main.cf, as on the host.
    writeFileSync(join(building, 'tmp/debconf'), 'postfix postfix/main_mailer_type select No configuration\n')
    inRoot('debconf answers', building, ['debconf-set-selections', '/tmp/debconf'], 60_000)
    inRoot('apt-get update', building, ['apt-get', 'update'], APT_TIMEOUT_MS)
    inRoot(`apt-get install ${DEBIAN13.packages.join(' ')}`, building, ['apt-get', 'install', '-y', '--no-install-recommends', ...DEBIAN13.packages], APT_TIMEOUT_MS)
    inRoot('apt-get clean', building, ['apt-get', 'clean'], 60_000)
    rmSync(join(building, 'tmp/debconf'), { force: true })
    writeFileSync(join(building, STAMP), `${JSON.stringify({ ...wantedStamp(), mirror, builtAt: new Date().toISOString() }, null, 2)}\n`)
    rmSync(root, { recursive: true, force: true })
    renameSync(building, root)
  } catch (e) {
    rmSync(building, { recursive: true, force: true })
    throw e
  }
  console.error(`install-peers: debian13: root ready in ${root} (${Math.round((Date.now() - started) / 1000)} s)`)
  return root
}

export { BuildError }

// Run directly: build (or confirm) the root.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    await ensureDebian13Root()
  } catch (e) {
    console.error(`install-peers: debian13: ${e.message}`)
    process.exit(1)
  }
}
