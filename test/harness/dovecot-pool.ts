// A pool of real Dovecot backends on shared storage, as a cluster behind a traffic manager has
// them (NFS, Ceph): every member serves every mailbox from ONE mail directory, each member is its
// own Dovecot (own base_dir, state_dir, log, master PID) listening on its own loopback address,
// all on the same ports, as pool members share mailhostd's pool-wide `ports`. Indexes live in the
// shared Maildirs: what two members serving one user at once would corrupt.
//
// Where a login landed: each member answers IMAP ID with x-backend=<member id> (harness
// dovecot.ts), which a client logged in through a proxy asks after LOGIN. Who is logged in where:
// `doveadm who` through each member's own config and base_dir.

import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { startDovecot, writeMailboxes, type Dovecot, type MailUser } from './dovecot.js'
import { ImapSession } from './imap-client.js'
import { DEBIAN12_SET, type PeerSet } from './peer-set.js'
import { freePortsOnAll } from './ports.js'
import { forget, removeOnExit } from './process-tree.js'

export interface PoolMemberSpec {
  /** The member id (mailhostd's members[].id): names it in IMAP ID answers. */
  id: string
  /** Its own loopback address (127.0.0.0/8). */
  address: string
}

export interface SharedPoolOptions {
  set?: PeerSet
  /** Names the pool in the one message every mailbox starts with ("hello from <name>"). */
  name: string
  members: readonly PoolMemberSpec[]
  /** Every member accepts these users with these passwords (its own passwd-file). */
  users: readonly MailUser[]
  /** Doveadm's HTTP API on every member, on one more shared port, with this key. */
  doveadmApiKey?: string
  /** dovecot.conf settings for every member. */
  settings?: Record<string, string>
  debug?: boolean
}

export interface SharedPool {
  readonly set: PeerSet
  /** The one mail directory every member serves. */
  readonly mailDir: string
  /** The ports every member listens on, each on its own address. */
  readonly ports: { imap: number; pop3: number; lmtp: number; doveadm?: number }
  /** Members by id, in the order given. */
  readonly members: ReadonlyMap<string, Dovecot>
  /** The member listening on `address`. */
  memberAt(address: string): string | undefined
  /**
   * Live sessions across the pool: user -> the ids of the members where the user has at least
   * one session, from `doveadm who` on every running member, asked at once.
   */
  who(): Promise<Map<string, string[]>>
  /** Stops every member and removes the mail directory. Idempotent. */
  stop(): Promise<void>
}

/** Starts the members one after the other; everything is stopped by t's teardown, also when a later start fails. */
export async function startSharedPool(t: Pick<Test, 'teardown'>, o: SharedPoolOptions): Promise<SharedPool> {
  const set = o.set ?? DEBIAN12_SET
  const mailDir = await mkdtemp(join(tmpdir(), 'mailhostd-pool-vmail-'))
  removeOnExit(mailDir)
  const members = new Map<string, Dovecot>()
  let stopping: Promise<void> | undefined
  const stop = () =>
    (stopping ??= (async () => {
      await Promise.all([...members.values()].map((d) => d.stop()))
      forget(mailDir)
      await rm(mailDir, { recursive: true, force: true })
    })())
  t.teardown(stop)
  // The members' mail processes (user `mail`) must reach the mailboxes inside.
  await chmod(mailDir, 0o755)
  await writeMailboxes(set, mailDir, o.name, o.users)
  const [imap, pop3, lmtp, doveadm] = (await freePortsOnAll(
    o.members.map((m) => m.address),
    4,
  )) as [number, number, number, number]
  const ports = { imap, pop3, lmtp, ...(o.doveadmApiKey ? { doveadm } : {}) }
  for (const m of o.members) {
    members.set(
      m.id,
      await startDovecot({
        set,
        role: 'backend',
        name: m.id,
        users: o.users,
        mailDir,
        address: m.address,
        ports: { imap, pop3, lmtp },
        ...(o.doveadmApiKey ? { doveadmHttp: { port: doveadm, apiKey: o.doveadmApiKey } } : {}),
        ...(o.settings ? { settings: o.settings } : {}),
        ...(o.debug ? { debug: true } : {}),
      }),
    )
  }
  return {
    set,
    mailDir,
    ports,
    members,
    memberAt: (address) => o.members.find((m) => m.address === address)?.id,
    who: async () => {
      const byMember = await Promise.all([...members].map(async ([id, d]) => [id, await d.who()] as const))
      const where = new Map<string, string[]>()
      for (const [id, users] of byMember) {
        for (const user of users.keys()) where.set(user, [...(where.get(user) ?? []), id])
      }
      return where
    },
    stop,
  }
}

/** Users on more than one member in a who() answer: the split the pool exists to prevent. */
export function splitUsers(where: ReadonlyMap<string, readonly string[]>): [string, string[]][] {
  return [...where].filter(([, ids]) => ids.length > 1).map(([u, ids]) => [u, [...ids]])
}

/** An IMAP session logged in (through a proxy or not) that knows which member it landed on. */
export interface Landing {
  session: ImapSession
  /** The member's id from its IMAP ID answer. */
  member: string
}

/**
 * Logs `user` in over IMAP at `host` (127.0.0.1 by default):`port` and asks the backend's ID; the
 * session stays open. A refused login is returned as the tagged line, not thrown.
 */
export async function landOn(port: number, user: string, password: string, o: { host?: string; timeoutMs?: number } = {}): Promise<Landing | { refused: string }> {
  const { session } = await ImapSession.open(port, o)
  try {
    const login = await session.login(user, password)
    if (login.status !== 'OK') {
      session.close()
      return { refused: login.line }
    }
    const member = (await session.id())['x-backend']
    if (member === undefined) throw new Error(`${user}: the backend answered ID without x-backend`)
    return { session, member }
  } catch (e) {
    session.close()
    throw e
  }
}

/** landOn, then LOGOUT: which member one login of `user` lands on. */
export async function landing(port: number, user: string, password: string, o: { host?: string } = {}): Promise<string | { refused: string }> {
  const l = await landOn(port, user, password, o)
  if ('refused' in l) return l
  await l.session.logout().catch(() => l.session.close())
  return l.member
}
