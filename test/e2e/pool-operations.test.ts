// Acceptance (issue 15, shared-storage pools), on each peer set, on the cluster of
// test/e2e/pool-cluster.ts (two mailhostd instances on one PostgreSQL, three real Dovecot members
// on shared storage, two Dovecot Lua proxies, 300 users); pinFor is long here, so no pin expires
// during the file and every move is the operation's doing:
// - status (GET /v1/pools/:id) on both instances: users pinned per member, as the logins landed;
// - drain through A: pinned users stay on the member, users never seen before are not pinned to
//   it; flush of the member through B: its pins are dropped and those users land elsewhere
//   (drained: no new pins); activate through B;
// - move-user through A and through B: the user's logins through both proxies and both transport
//   maps go to the named member; with kick, the user's live session on the old member is ended
//   (doveadm's HTTP API); flush of one user: back to the hash's choice;
// - every one of those writes is in the audit log (subject type pool), seen from both instances;
// - a run holding IMAP sessions open and logging users in and out through both proxies while a
//   member is stopped, restarted, drained and weighted: no user ever has live sessions on two
//   members at once, checked with `doveadm who` on the members (sampled all along) and with the
//   sessions the clients held.

import t, { type Test } from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { landing, landOn, splitUsers, type Landing } from '../harness/dovecot-pool.js'
import type { Dovecot } from '../harness/dovecot.js'
import {
  landings,
  MEMBER_IDS,
  PASSWORD,
  perMember,
  POOL,
  poolStatus,
  startPoolCluster,
  transportMembers,
  upOn,
  downOn,
  USERS,
  within,
  DOWN_WITHIN_MS,
  UP_WITHIN_MS,
  type PoolCluster,
} from './pool-cluster.js'
import type { AdminApi } from '../harness/admin-api.js'

// Root budget: two peer sets, each about two minutes quiet; doubled for a loaded machine.
t.setTimeout(12 * 60_000)

/** Far longer than the file: no pin expires, so every move is an operation's or a health change's. */
const PIN_FOR_MS = 30 * 60_000
/** A change made through one instance is seen by the other within this (docs/admin.md: 1 s); the rest is margin. */
const CHANGE_SEEN_MS = 10_000

const users = USERS.map((u) => u.user)
/** Logged in at the start; the rest have no pin until the drain test logs them in. */
const SEEN = users.slice(0, 250)
const FRESH = users.slice(250)
const timings: string[] = []

const path = (p: string) => `/v1/pools/${POOL}${p}`

async function memberField(api: AdminApi, member: string): Promise<{ adminState: string; weight: number; pins?: number }> {
  const m = (await poolStatus(api)).members.find((x) => x.id === member)
  if (!m) throw new Error(`no member ${member} in the status`)
  return m
}

eachPeerSet(t, async (t, set) => {
  const t0 = Date.now()
  const c: PoolCluster = await startPoolCluster(t, set, { pinForMs: PIN_FOR_MS })
  timings.push(`${set.id}: cluster up with ${users.length} accounts in ${Date.now() - t0} ms`)
  /** Where each user of SEEN landed first, every member up and active: the hash's choice. */
  let home = new Map<string, string>()
  /** Where each user landed with every member active: the hash's choice, which a flush returns them to. */
  let hashChoice = new Map<string, string>()
  const auditMark = new Date().toISOString()

  const bothProxies = async (t: Test, who: readonly string[], what: string): Promise<Map<string, string>> => {
    const [viaA, viaB] = [await landings(c.proxyA, who), await landings(c.proxyB, who)]
    const differ = who.filter((u) => viaA.get(u) !== viaB.get(u)).map((u) => `${u}: ${viaA.get(u)} / ${viaB.get(u)}`)
    t.same(differ, [], `${what}: the same member through both proxies`)
    t.same([...viaA].filter(([, m]) => !MEMBER_IDS.includes(m)), [], `${what}: every login landed`)
    return viaA
  }

  await t.test('status on both instances: users pinned per member as their logins landed', async (t) => {
    home = await bothProxies(t, SEEN, 'first logins')
    hashChoice = new Map(home)
    const counts = perMember(home)
    for (const [name, api] of [
      ['A', c.apiA],
      ['B', c.apiB],
    ] as const) {
      await within(`instance ${name}'s status counting the pins`, CHANGE_SEEN_MS, async () => {
        const s = await poolStatus(api)
        return s.members.every((m) => m.pins === counts[m.id])
      }).catch(async (e: Error) => t.fail(`${e.message}: ${JSON.stringify(await poolStatus(api))}, landed ${JSON.stringify(counts)}`))
      const s = await poolStatus(api)
      t.same(
        Object.fromEntries(s.members.map((m) => [m.id, m.pins])),
        counts,
        `instance ${name}: pinned per member ${JSON.stringify(counts)}`,
      )
      t.ok(
        s.members.every((m) => typeof m.share === 'number'),
        `instance ${name}: a hash share per member (${s.members.map((m) => `${m.id} ${m.share}`).join(', ')})`,
      )
    }
    const listed = await c.apiB.get(`${path('/pins')}?member=m2&limit=1000`)
    t.equal(listed.status, 200, 'pins listing')
    const listedUsers = (JSON.stringify(listed.body).match(/user\d{3}@example\.org/g) ?? []).sort()
    t.same(listedUsers, SEEN.filter((u) => home.get(u) === 'm2').sort(), 'GET pins?member=m2 lists exactly the users who landed on m2')
  })

  await t.test('drain through A, flush the member through B: pinned users stay until flushed, then no new pins on it', async (t) => {
    const drained = await c.apiA.patch(path('/members/m1'), { adminState: 'drain' })
    t.equal(drained.status, 200, `PATCH members/m1 {adminState: drain} through A: ${JSON.stringify(drained.body)}`)
    await within("B's status shows m1 draining", CHANGE_SEEN_MS, async () => (await memberField(c.apiB, 'm1')).adminState === 'drain')
    const onM1 = SEEN.filter((u) => home.get(u) === 'm1')
    const stayed = await bothProxies(t, onM1, 'm1 draining')
    t.same(
      onM1.filter((u) => stayed.get(u) !== 'm1'),
      [],
      `all ${onM1.length} users pinned to m1 stay on it while it drains`,
    )
    const fresh = await bothProxies(t, FRESH, 'first logins of users never seen, m1 draining')
    t.same(
      FRESH.filter((u) => fresh.get(u) === 'm1'),
      [],
      `none of ${FRESH.length} users never seen before is pinned to m1: ${JSON.stringify(perMember(fresh))}`,
    )

    const flushed = await c.apiB.post<{ dropped?: number }>(path('/flush'), { member: 'm1' })
    t.same([flushed.status, flushed.body?.dropped], [200, onM1.length], `flush {member: m1} through B dropped its ${onM1.length} pins`)
    const after = await bothProxies(t, onM1, 'm1 flushed and draining')
    t.same(
      onM1.filter((u) => after.get(u) === 'm1'),
      [],
      `none of m1's former users lands on it: ${JSON.stringify(perMember(after))}`,
    )
    for (const u of onM1) home.set(u, after.get(u)!)

    const active = await c.apiB.patch(path('/members/m1'), { adminState: 'active' })
    t.equal(active.status, 200, 'PATCH members/m1 {adminState: active} through B')
    await within("A's status shows m1 active", CHANGE_SEEN_MS, async () => (await memberField(c.apiA, 'm1')).adminState === 'active')
    const pinned = await bothProxies(t, onM1, 'm1 active again')
    t.same(
      onM1.filter((u) => pinned.get(u) !== home.get(u)),
      [],
      'they stay pinned where they went',
    )
  })

  await t.test('move-user through A and through B, flush one user: each goes where it says, on every protocol', async (t) => {
    // On m2 by the hash itself, not a former m1 user the drain sent there.
    const userA = SEEN.find((u) => home.get(u) === 'm2' && hashChoice.get(u) === 'm2')!
    const userB = SEEN.find((u) => home.get(u) === 'm3')!
    for (const [name, api, user, target] of [
      ['A', c.apiA, userA, 'm3'],
      ['B', c.apiB, userB, 'm1'],
    ] as const) {
      const r = await api.post(path('/move-user'), { user, member: target })
      t.equal(r.status, 200, `move-user ${user} -> ${target} through ${name}: ${JSON.stringify(r.body)}`)
      await within(`${user}'s logins on ${target} through both proxies`, CHANGE_SEEN_MS, async () => {
        const [a, b] = [await landing(c.proxyA.ports.imap, user, PASSWORD.get(user)!), await landing(c.proxyB.ports.imap, user, PASSWORD.get(user)!)]
        return a === target && b === target
      })
      const [trA, trB] = [await transportMembers(c, c.A, [user]), await transportMembers(c, c.B, [user])]
      t.same([trA.get(user), trB.get(user)], [target, target], `both transport maps send ${user}'s mail to ${target}`)
    }

    // With kick: the user's live session on the old member is ended, so the move never leaves
    // the user on two members.
    const userK = SEEN.find((u) => home.get(u) === 'm3' && u !== userB)!
    const held = await landOn(c.proxyA.ports.imap, userK, PASSWORD.get(userK)!)
    if ('refused' in held) throw new Error(held.refused)
    t.equal(held.member, 'm3', `${userK} holds a session on m3`)
    const kicked = await c.apiB.post(path('/move-user'), { user: userK, member: 'm2', kick: true })
    t.equal(kicked.status, 200, `move-user ${userK} -> m2 with kick through B: ${JSON.stringify(kicked.body)}`)
    const noop = await held.session.command(['NOOP']).catch((e: Error) => ({ status: 'BAD', closed: true, line: e.message }))
    t.match(noop, { status: 'BAD', closed: true }, `the session on m3 was ended (${noop.line})`)
    held.session.close()
    t.same((await c.pool.who()).get(userK), undefined, `doveadm who: no session of ${userK} left on any member`)
    t.equal(await landing(c.proxyA.ports.imap, userK, PASSWORD.get(userK)!), 'm2', `${userK}'s next login lands on m2`)

    const flushed = await c.apiB.post<{ dropped?: number }>(path('/flush'), { user: userA })
    t.same([flushed.status, flushed.body?.dropped], [200, 1], `flush {user: ${userA}} through B dropped its pin`)
    const back = await bothProxies(t, [userA], 'after the flush')
    t.equal(back.get(userA), 'm2', `${userA} lands on the hash's choice again (m2)`)
  })

  await t.test('every operation is in the audit log, seen from both instances', async (t) => {
    for (const [name, api] of [
      ['A', c.apiA],
      ['B', c.apiB],
    ] as const) {
      const r = await api.get<{ entries: { actor: string; action: string; subject: string; after: unknown; before: unknown }[] }>(`/v1/audit?subjectType=pool&since=${encodeURIComponent(auditMark)}&limit=100`)
      t.equal(r.status, 200, `GET /v1/audit through ${name}`)
      const entries = [...r.body.entries].reverse()
      t.equal(entries.length, 7, `seven pool writes audited: ${entries.map((e) => `${e.action} ${e.subject}`).join('; ')}`)
      t.ok(
        entries.every((e) => e.actor === 'demo-admin' && e.subject.startsWith(POOL)),
        'each by the token that made it, on the pool',
      )
      const text = entries.map((e) => JSON.stringify(e))
      t.match(text[0], /drain/, 'the drain')
      t.match(text[1], /m1/, 'the flush of m1')
      t.match(text[2], /active/, 'the activation')
      t.match(text[3], /m3/, 'the move to m3')
      t.match(text[4], /m1/, 'the move to m1')
      t.match(text[5], /kick/, 'the move with a kick')
      t.match(text[6], /user\d{3}@example\.org/, 'the flush of one user')
    }
  })

  await t.test('sessions held and churned through both proxies while a member is stopped, restarted, drained and weighted: never on two members at once', async (t) => {
    const run = await startChurn(c)
    const step = async (what: string, act: () => Promise<void>) => {
      const at = Date.now()
      await act()
      // Every churned user logs in at least once more after the change.
      await run.rounds(1)
      timings.push(`${set.id}: churn step "${what}" ${Date.now() - at} ms`)
    }
    try {
      await run.rounds(1)
      const m2 = c.pool.members.get('m2')!
      await step('m2 stopped', async () => {
        const at = Date.now()
        await m2.kill()
        timings.push(`${set.id}: m2's kill() took ${Date.now() - at} ms`)
        await within('m2 down on both instances', DOWN_WITHIN_MS, async () => (await downOn(c, 'm2')) === 2, at)
      })
      await step('m2 restarted', async () => {
        const at = Date.now()
        await m2.restart()
        await within('m2 up on both instances', UP_WITHIN_MS, async () => (await upOn(c, 'm2')) === 2, at)
      })
      await step('m3 drained', async () => {
        t.equal((await c.apiA.patch(path('/members/m3'), { adminState: 'drain' })).status, 200, 'm3 drained through A')
        await within("B's status shows m3 draining", CHANGE_SEEN_MS, async () => (await memberField(c.apiB, 'm3')).adminState === 'drain')
      })
      await step('m1 weighted 3', async () => {
        t.equal((await c.apiB.patch(path('/members/m1'), { weight: 3 })).status, 200, 'm1 weight 3 through B')
        await within("A's status shows m1's weight", CHANGE_SEEN_MS, async () => (await memberField(c.apiA, 'm1')).weight === 3)
      })
      await step('m3 active, m1 weight 1', async () => {
        t.equal((await c.apiB.patch(path('/members/m3'), { adminState: 'active' })).status, 200, 'm3 active through B')
        t.equal((await c.apiA.patch(path('/members/m1'), { weight: 1 })).status, 200, 'm1 weight 1 through A')
        await within('both instances see it', CHANGE_SEEN_MS, async () =>
          (await Promise.all([c.apiA, c.apiB].map(async (api) => (await memberField(api, 'm3')).adminState === 'active' && (await memberField(api, 'm1')).weight === 1))).every(Boolean),
        )
      })
    } catch (e) {
      // The sessions seen until then are checked all the same.
      t.fail(`the run stopped early: ${(e as Error).message}`)
    } finally {
      await run.stop()
    }
    const r = run.report()
    timings.push(`${set.id}: churn ${r.logins} logins (${r.refused} refused), ${r.samples} doveadm who samples, ${r.durationMs} ms`)
    t.ok(r.samples >= 20, `doveadm who sampled on every member ${r.samples} times`)
    t.ok(r.logins >= 200, `${r.logins} logins through both proxies, ${r.held} sessions held`)
    t.same(r.whoSplits, [], 'doveadm who never showed a user on two members at once')
    t.same(r.clientOverlaps, [], 'no two sessions the clients held for one user were open on two members at once')
    t.same(r.badRefusals, [], 'logins refused only with a temporary failure (a member down), never as a wrong password')
  })

  t.teardown(() => {
    timings.push(`${set.id}: whole peer set ${Date.now() - t0} ms`)
    t.comment(timings.filter((l) => l.startsWith(set.id)).join('\n'))
  })
})

// ---- The churn: sessions held open, users logged in and out, doveadm who sampled.

/** Held sessions and the churned users: spread over every member by the first logins. */
const CHURNED = users.slice(0, 60)
const HOLDERS = CHURNED.filter((_, i) => i % 3 === 0)
const CHURN_WORKERS = 4

interface Session {
  user: string
  member: string
  opened: number
  closed?: number
}

interface ChurnReport {
  logins: number
  refused: number
  held: number
  samples: number
  durationMs: number
  whoSplits: string[]
  clientOverlaps: string[]
  badRefusals: string[]
}

async function startChurn(c: PoolCluster) {
  const started = Date.now()
  const sessions: Session[] = []
  const whoSplits: string[] = []
  const badRefusals: string[] = []
  let logins = 0
  let refused = 0
  let samples = 0
  let churned = 0
  let running = true
  const proxies: Dovecot[] = [c.proxyA, c.proxyB]
  let turn = 0

  const login = async (user: string): Promise<{ landing: Landing; record: Session } | undefined> => {
    const proxy = proxies[turn++ % 2]!
    const l = await landOn(proxy.ports.imap, user, PASSWORD.get(user)!)
    logins++
    if ('refused' in l) {
      refused++
      if (!/\[UNAVAILABLE\]/.test(l.refused)) badRefusals.push(`${user}: ${l.refused}`)
      return undefined
    }
    const record: Session = { user, member: l.member, opened: Date.now() }
    // The proxy closes the client's connection as soon as the member's session ends.
    void l.session.closed.then((at) => (record.closed = at))
    sessions.push(record)
    return { landing: l, record }
  }
  const closed = async (s: { landing: Landing }) => {
    s.landing.session.close()
    await s.landing.session.closed
  }

  const holder = async (user: string) => {
    while (running) {
      const s = await login(user).catch(() => undefined)
      if (!s) {
        await new Promise((r) => setTimeout(r, 200))
        continue
      }
      // Held: a NOOP now and then notices a member that died under it.
      while (running) {
        const ok = await s.landing.session.command(['NOOP']).then(
          (r) => r.status === 'OK',
          () => false,
        )
        if (!ok) break
        await new Promise((r) => setTimeout(r, 500))
      }
      await closed(s)
    }
  }

  const churner = async (w: number) => {
    for (let i = w; running; i += CHURN_WORKERS) {
      const user = CHURNED[i % CHURNED.length]!
      const s = await login(user).catch(() => undefined)
      if (s) {
        await s.landing.session.command(['NOOP']).catch(() => undefined)
        await s.landing.session.logout().catch(() => undefined)
        await closed(s)
      }
      churned++
    }
  }

  const sampler = async () => {
    while (running) {
      const where = await c.pool.who()
      samples++
      for (const [user, members] of splitUsers(where)) whoSplits.push(`${new Date().toISOString()} ${user} on ${members.join(' and ')}`)
    }
  }

  const loops = [...HOLDERS.map(holder), ...Array.from({ length: CHURN_WORKERS }, (_, w) => churner(w)), sampler()]
  return {
    /** Resolves once every churned user has been logged in `n` more times (bounded). */
    rounds: async (n: number) => {
      const target = churned + n * CHURNED.length
      await within(`${n} churn round(s)`, 120_000, async () => churned >= target)
    },

    stop: async () => {
      running = false
      await Promise.all(loops)
    },
    report: (): ChurnReport => {
      const clientOverlaps: string[] = []
      const end = (s: Session) => s.closed ?? Infinity
      const byUser = new Map<string, Session[]>()
      for (const s of sessions) byUser.set(s.user, [...(byUser.get(s.user) ?? []), s])
      for (const [user, list] of byUser) {
        for (const a of list) {
          for (const b of list) {
            if (a.member < b.member && a.opened < end(b) && b.opened < end(a)) clientOverlaps.push(`${user}: on ${a.member} ${a.opened}-${end(a)} and ${b.member} ${b.opened}-${end(b)}`)
          }
        }
      }
      return { logins, refused, held: HOLDERS.length, samples, durationMs: Date.now() - started, whoSplits, clientOverlaps, badRefusals }
    },
  }
}

