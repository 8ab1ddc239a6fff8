// The peer set a harness runs its programs from: Debian 12's packages on this machine, or Debian
// 13's in the root scripts/install-peers.mjs builds (scripts/peer-sets.mjs declares both).
//
// Harnesses never name a binary's location or a system user's ids themselves; they ask the set:
// `set.start('slapd', ...)`, `set.run('postmap', ...)`, `set.ids('postgres')`. For debian13 the
// program runs through scripts/in-root.sh in a mount namespace of its own: chroot into the root, with
// the temp dir and the checkout bound at their own paths, so a path a test writes means the same
// file to the peer. The spawned PID is the program itself (unshare, sh and chroot each exec), so
// stopping by PID, process trees and /proc/PID/fd checks work as for the machine's own peers; the
// mounts live in the peer's private namespace and vanish with it, even when the test is killed.
//
// Test files that run peers run once per set: eachPeerSet(t, async (t, set) => { ... }).
// MAILHOSTD_PEER_SETS=debian12 (or debian13) narrows a run by hand; by default both run, and a
// set whose peers are missing fails its tests, never skips them.

import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import type { SpawnOptions } from 'node:child_process'
import type { Test } from 'tap'
import { DEBIAN13, isCurrent } from '../../scripts/peer-sets.mjs'
import { mustRun, run, start, type RunResult, type Started } from './process.js'

export type PeerSetId = 'debian12' | 'debian13'

export interface RunOptions {
  env?: NodeJS.ProcessEnv
  cwd?: string
  input?: string
  timeoutMs?: number
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv
  cwd?: string
  /** Run as this user (numeric ids of this set: see ids()). */
  user?: { uid: number; gid: number }
  stdio?: SpawnOptions['stdio']
}

export interface PeerSet {
  readonly id: PeerSetId
  /** For test names and messages: "Debian 13 (trixie)". */
  readonly label: string
  /** Dovecot's major.minor in this set: which dovecot/ files apply ('2.3': dovecot/2.3/). */
  readonly dovecot: '2.3' | '2.4'
  /** The host path of a path in this set's file system (its /etc/dovecot, its /usr/lib/...). */
  path(p: string): string
  /** uid and gid of a system user of this set (postgres, dovecot, postfix, mail, ...). */
  ids(user: string): { uid: number; gid: number }
  /** gid of a system group of this set. */
  gid(group: string): number
  run(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>
  mustRun(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>
  /** A long-running program of this set, tracked for cleanup like process.ts's start(). */
  start(cmd: string, args: readonly string[], opts?: StartOptions): Started
}

const IN_ROOT = fileURLToPath(new URL('../../scripts/in-root.sh', import.meta.url))
const CHECKOUT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '')

function passwdEntry(file: string, name: string): string[] {
  const line = readFileSync(file, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`))
  if (line === undefined) throw new Error(`no ${name} in ${file}`)
  return line.split(':')
}

function makeSet(id: PeerSetId, label: string, dovecot: PeerSet['dovecot'], root: string | undefined): PeerSet {
  const path = (p: string) => (root === undefined ? p : `${root}${p}`)
  const checkRoot = () => {
    if (root !== undefined && !isCurrent(root)) {
      throw new Error(`peer set ${id}: no prepared root at ${root} (or it is out of date): run \`node scripts/install-peers.mjs\` as root (npm test does it first)`)
    }
  }
  /** argv for cmd in this set, as `user`, in `cwd`. */
  const argv = (cmd: string, args: readonly string[], o: { user?: { uid: number; gid: number } | undefined; cwd?: string | undefined }) => {
    if (root === undefined) return { file: cmd, args: [...args] }
    checkRoot()
    const userspec = o.user ? `${o.user.uid}:${o.user.gid}` : ''
    const binds = [tmpdir(), `${CHECKOUT}:ro`]
    return { file: 'sh', args: [IN_ROOT, root, userspec, o.cwd ?? '/', ...binds, '--', cmd, ...args] }
  }
  return {
    id,
    label,
    dovecot,
    path,
    ids(user) {
      const f = passwdEntry(path('/etc/passwd'), user)
      return { uid: Number(f[2]), gid: Number(f[3]) }
    },
    gid(group) {
      return Number(passwdEntry(path('/etc/group'), group)[2])
    },
    run(cmd, args, opts = {}) {
      const a = argv(cmd, args, { cwd: opts.cwd })
      // In the root the cwd is set by in-root.sh; on the host by spawn.
      return run(a.file, a.args, root === undefined ? opts : { ...opts, cwd: undefined })
    },
    mustRun(cmd, args, opts = {}) {
      const a = argv(cmd, args, { cwd: opts.cwd })
      return mustRun(a.file, a.args, root === undefined ? opts : { ...opts, cwd: undefined })
    },
    start(cmd, args, opts = {}) {
      const a = argv(cmd, args, { user: opts.user, cwd: opts.cwd })
      const spawnOpts: SpawnOptions = {
        ...(opts.env ? { env: opts.env } : {}),
        ...(opts.stdio ? { stdio: opts.stdio } : {}),
        ...(root === undefined ? { ...(opts.cwd ? { cwd: opts.cwd } : {}), ...(opts.user ?? {}) } : {}),
      }
      return start(a.file, a.args, spawnOpts)
    },
  }
}

export const DEBIAN12_SET: PeerSet = makeSet('debian12', 'Debian 12 (bookworm)', '2.3', undefined)
export const DEBIAN13_SET: PeerSet = makeSet('debian13', 'Debian 13 (trixie)', '2.4', DEBIAN13.root)

const ALL: readonly PeerSet[] = [DEBIAN12_SET, DEBIAN13_SET]

/** The sets this run covers: all, unless MAILHOSTD_PEER_SETS names some (comma-separated). */
export function peerSets(): PeerSet[] {
  const wanted = process.env.MAILHOSTD_PEER_SETS?.split(',').map((s) => s.trim()).filter(Boolean)
  if (!wanted || wanted.length === 0) return [...ALL]
  const unknown = wanted.filter((w) => !ALL.some((s) => s.id === w))
  if (unknown.length) throw new Error(`MAILHOSTD_PEER_SETS names unknown peer sets: ${unknown.join(', ')} (known: ${ALL.map((s) => s.id).join(', ')})`)
  return ALL.filter((s) => wanted.includes(s.id))
}

export function peerSetById(id: PeerSetId): PeerSet {
  return id === 'debian12' ? DEBIAN12_SET : DEBIAN13_SET
}

/**
 * Runs `body` as one subtest per peer set, one after the other (two sets at once would only
 * double the load on a two-core machine). Each subtest has its own teardown, so one set's peers
 * are stopped before the next set's start.
 */
export function eachPeerSet(t: Test, body: (t: Test, set: PeerSet) => Promise<void> | void): void {
  for (const set of peerSets()) t.test(set.label, (tt) => body(tt, set))
}

/**
 * One top-level test per peer set, named "<name> [<set id>]": for files in which only some
 * tests run a peer (the others are pure and run once).
 */
export function peerTest(t: Test, name: string, body: (t: Test, set: PeerSet) => Promise<void> | void): void {
  for (const set of peerSets()) t.test(`${name} [${set.id}]`, (tt) => body(tt, set))
}
