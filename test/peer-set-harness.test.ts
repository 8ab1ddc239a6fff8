// Proves the peer sets (test/harness/peer-set.ts, scripts/peer-sets.mjs, scripts/in-root.sh):
// each set runs the releases it claims to, a chrooted peer's mounts live only in its own mount
// namespace (the host's mount table never changes, also when the test process is killed), the
// root is not used when its stamp does not match the package list (and is patched, not rebuilt,
// when the list only grew), and a root cannot be built from an unreachable archive without a
// clear message.

import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { DEBIAN13, STAMP, isCurrent, packagesToAdd, wantedStamp } from '../scripts/peer-sets.mjs'
import { DEBIAN12_SET, DEBIAN13_SET, eachPeerSet, peerSets } from './harness/peer-set.js'
import { postgresBin } from './harness/postgres.js'
import { isAlive, run, stopPid } from './harness/process.js'

const CHECKOUT = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '')
const IN_ROOT = join(CHECKOUT, 'scripts/in-root.sh')

/** The host's mount table without per-read noise: mount ids and mount points. */
const hostMounts = async () => (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter(Boolean).sort()

/** Waits (bounded) until pid runs `program`, through the execs of in-root.sh; returns its exe. */
async function untilProgram(pid: number, program: string): Promise<string> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const exe = (await run('readlink', [`/proc/${pid}/exe`])).stdout.trim()
    if (exe.endsWith(`/${program}`) || Date.now() > deadline) return exe
    await sleep(20)
  }
}

const RELEASES = {
  debian12: { dovecot: /^2\.3\./, postfix: /^3\.7\./, slapd: /slapd 2\.5\./, nginx: /nginx\/1\.22\./, postgres: 15 },
  debian13: { dovecot: /^2\.4\./, postfix: /^3\.10\./, slapd: /slapd 2\.6\./, nginx: /nginx\/1\.26\./, postgres: 17 },
} as const

eachPeerSet(t, async (t, set) => {
  t.test('the set runs the releases it stands for', async (t) => {
    const want = RELEASES[set.id]
    t.match((await set.mustRun('dovecot', ['--version'])).stdout.trim(), want.dovecot, 'Dovecot')
    // -d: the compiled-in default, which needs no main.cf (Debian's "No configuration" has none).
    t.match((await set.mustRun('postconf', ['-d', '-h', 'mail_version'])).stdout.trim(), want.postfix, 'Postfix')
    const slapd = await set.run('slapd', ['-VV'])
    t.match(slapd.stdout + slapd.stderr, want.slapd, 'OpenLDAP')
    const nginx = await set.run('nginx', ['-v'])
    t.match(nginx.stderr, want.nginx, 'nginx')
    t.equal(postgresBin(set).version, want.postgres, 'PostgreSQL')
    t.equal(set.dovecot, set.id === 'debian12' ? '2.3' : '2.4', 'which dovecot/ files apply')
  })

  t.test("a peer's mounts stay in its own namespace and go with it", async (t) => {
    const before = await hostMounts()
    const peer = set.start('sleep', ['60'])
    t.teardown(() => peer.stop('SIGKILL'))
    // The peer is the PID we spawned: unshare, sh and chroot each exec'd into the next.
    t.match(await untilProgram(peer.pid, 'sleep'), /\/sleep$/, 'the spawned PID is the program itself')
    if (set.id === 'debian13') {
      const ns = async (pid: number | 'self') => (await run('readlink', [`/proc/${pid}/ns/mnt`])).stdout.trim()
      t.not(await ns(peer.pid), await ns('self'), 'the peer has a mount namespace of its own')
      t.equal((await run('readlink', [`/proc/${peer.pid}/root`])).stdout.trim(), DEBIAN13.root, 'its root is the Debian 13 root')
      // mountinfo paths are relative to the process's root: /proc and the temp dir, inside it.
      const own = (await readFile(`/proc/${peer.pid}/mountinfo`, 'utf8')).split('\n').map((l) => l.split(' ')[4])
      t.ok(own.includes('/proc') && own.includes(tmpdir()), "/proc and the temp dir are mounted in the peer's namespace")
    }
    t.same(await hostMounts(), before, "the host's mount table did not change while the peer ran")
    await peer.stop('SIGKILL')
    t.same(await hostMounts(), before, 'nor after it stopped')
  })

  t.test('a test process killed with SIGKILL leaves no mount on the host', async (t) => {
    const before = await hostMounts()
    // A child test process that starts a peer of this set and is then killed before any
    // teardown can run. Its peer is orphaned (its PID printed first, so it can be stopped here).
    const script = [
      `import { peerSetById } from ${JSON.stringify(join(CHECKOUT, 'test/harness/peer-set.ts'))}`,
      `const p = peerSetById(${JSON.stringify(set.id)}).start('sleep', ['60'])`,
      'console.log(p.pid)',
      'setInterval(() => {}, 1000)',
    ].join('\n')
    const child = spawn(process.execPath, ['--import=@tapjs/typescript/import', '--input-type=module', '-e', script], {
      cwd: CHECKOUT,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const pid = await new Promise<number>((resolve, reject) => {
      let out = ''
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString()
        if (out.includes('\n')) resolve(Number(out.trim()))
      })
      child.on('exit', (code) => reject(new Error(`the child test process exited ${code} before starting its peer`)))
    })
    t.teardown(() => stopPid(pid, 'SIGKILL'))
    // Killed once the peer runs its program, so the kill tests an orphaned peer, not a start-up.
    await untilProgram(pid, 'sleep')
    child.kill('SIGKILL')
    await new Promise((resolve) => child.once('exit', resolve))
    t.ok(isAlive(pid), 'the orphaned peer still runs (only process.ts exit hooks stop peers, and they did not run)')
    t.same(await hostMounts(), before, "the host's mount table is unchanged")
    await stopPid(pid, 'SIGKILL')
    t.same(await hostMounts(), before, 'and stays so once the peer is gone')
  })
})

t.test('in-root.sh refuses to mount in its caller\'s namespace or into an unprepared root', async (t) => {
  const before = await hostMounts()
  // The marker in-root.sh sets when it re-executes itself under unshare, forged: it must still
  // notice that it never left the namespace it started in.
  const forged = await run('sh', ['-c', 'MAILHOSTD_IN_ROOT_NS="$$:$(readlink /proc/self/ns/mnt)" exec sh "$0" "$@"', IN_ROOT, DEBIAN13.root, '', '/', '--', 'true'])
  t.equal(forged.code, 125)
  t.match(forged.stderr, /not in a mount namespace of its own/)
  const empty = await mkdtemp(join(tmpdir(), 'mailhostd-noroot-'))
  t.teardown(() => rm(empty, { recursive: true, force: true }))
  const unprepared = await run('sh', [IN_ROOT, empty, '', '/', '--', 'true'])
  t.equal(unprepared.code, 125)
  t.match(unprepared.stderr, /not a prepared peer root/)
  t.same(await hostMounts(), before, 'nothing was mounted on the host')
})

t.test('a root whose stamp does not match the package list is not used; one that only lacks new packages gets them', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mailhostd-stamp-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  t.notOk(isCurrent(dir), 'no stamp: not current (a half-built root has none)')
  await writeFile(join(dir, STAMP), JSON.stringify(wantedStamp()))
  t.ok(isCurrent(dir), 'the stamp of the current package list')
  t.same(packagesToAdd(dir), [], 'nothing to add to a current root')
  await writeFile(join(dir, STAMP), JSON.stringify({ ...wantedStamp(), packages: [...DEBIAN13.packages, 'exim4'] }))
  t.notOk(isCurrent(dir), 'a package dropped from the list: not current')
  t.equal(packagesToAdd(dir), undefined, 'and rebuilt, not patched')
  await writeFile(join(dir, STAMP), JSON.stringify({ ...wantedStamp(), packages: DEBIAN13.packages.filter((p) => !p.startsWith('mariadb-')) }))
  t.notOk(isCurrent(dir), 'packages added to the list: not current')
  t.same(packagesToAdd(dir), ['mariadb-client', 'mariadb-server'], 'the new packages are installed into the cached root')
  await writeFile(join(dir, STAMP), JSON.stringify({ ...wantedStamp(), suite: 'forky' }))
  t.notOk(isCurrent(dir), 'another suite: rebuilt')
  t.equal(packagesToAdd(dir), undefined)
  await rm(join(dir, STAMP))
  t.equal(packagesToAdd(dir), undefined, 'no stamp (half-built or half-patched): rebuilt')
  t.ok(isCurrent(DEBIAN13.root), 'the cached root of this run is current (install-peers built or kept it)')
})

t.test('building a root from an unreachable archive fails fast with the URL', async (t) => {
  const cache = await mkdtemp(join(tmpdir(), 'mailhostd-cache-'))
  t.teardown(() => rm(cache, { recursive: true, force: true }))
  await mkdir(join(cache, 'debian13'))
  const started = Date.now()
  // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
  const r = await run(process.execPath, [join(CHECKOUT, 'scripts/debian13-root.mjs')], {
    env: { ...process.env, MAILHOSTD_PEER_CACHE: cache, MAILHOSTD_DEBIAN_MIRROR: 'http://127.0.0.1:9/debian' },
    timeoutMs: 60_000,
  })
  t.equal(r.code, 1)
  t.match(r.stderr, 'the Debian archive is unreachable: http://127.0.0.1:9/debian/dists/trixie/InRelease')
  t.ok(Date.now() - started < 45_000, 'within the probe time limit')
  t.notOk(isCurrent(join(cache, 'debian13')), 'no root that looks usable was left')
})

t.test('MAILHOSTD_PEER_SETS narrows the sets and refuses unknown names', async (t) => {
  const saved = process.env.MAILHOSTD_PEER_SETS
  t.teardown(() => {
    if (saved === undefined) delete process.env.MAILHOSTD_PEER_SETS
    else process.env.MAILHOSTD_PEER_SETS = saved
  })
  delete process.env.MAILHOSTD_PEER_SETS
  t.same(peerSets().map((s) => s.id), ['debian12', 'debian13'], 'both by default')
  process.env.MAILHOSTD_PEER_SETS = 'debian13'
  t.same(peerSets(), [DEBIAN13_SET])
  process.env.MAILHOSTD_PEER_SETS = 'debian12, debian13'
  t.same(peerSets(), [DEBIAN12_SET, DEBIAN13_SET])
  process.env.MAILHOSTD_PEER_SETS = 'debian11'
  t.throws(() => peerSets(), /unknown peer sets: debian11/)
})
