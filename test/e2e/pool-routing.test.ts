// Acceptance (issue 15, shared-storage pools), on each peer set: two mailhostd instances on one
// PostgreSQL, a pool of three real Dovecot backends sharing one mail directory (weights 1:2:1),
// two Dovecot Lua proxies each asking a different instance, 300 users (test/e2e/pool-cluster.ts).
// - Every user's IMAP logins through both proxies land on one member, and the transport and
//   local/<member> maps of both instances name that member (a message delivered over LMTP to it
//   arrives); the users per member are within 5 sigma of the weights.
// - A member stopped: within the health fall bound its users' logins land on the other members,
//   the same member through both proxies, and no other user moves.
// - The member restarted: its former users stay where they went while their pins live (pinFor
//   is short here); once pinFor has passed since their last lookup, exactly its former users
//   return to it, and the shares are the weights' again; all but one, who held an IMAP session
//   open all along (no lookup): a live session keeps its user's pin.

import t, { type Test } from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { landing, landOn, splitUsers } from '../harness/dovecot-pool.js'
import { ImapSession } from '../harness/imap-client.js'
import { SmtpSession } from '../harness/smtp-client.js'
import {
  DOWN_WITHIN_MS,
  HEALTH,
  keepPinsLive,
  landingsThroughBoth,
  MEMBER_IDS,
  MEMBERS,
  outsideSigma,
  PASSWORD,
  perMember,
  startPoolCluster,
  transportMembers,
  UP_WITHIN_MS,
  upOn,
  USERS,
  WEIGHTS,
  within,
  type PoolCluster,
} from './pool-cluster.js'

// Root budget: two peer sets, each about two minutes quiet (the pin expiry phase alone waits
// PIN_FOR_MS); doubled for a loaded machine.
t.setTimeout(12 * 60_000)

const PIN_FOR_MS = 20_000
/**
 * After the last lookup, a pin is gone once pinFor has passed; touched pins reach the store in a
 * batch about every second, so the store's last-use time may lag the lookup by that much, and
 * more when a loaded machine delays the batch's timer. Past this, a lookup must no longer find
 * the pin.
 */
const PIN_SLACK_MS = 6000
const VICTIM = 'm2'
/** How often every user is looked up while their pins must stay live: well within pinFor. */
const KEEP_EVERY_MS = 4000

const users = USERS.map((u) => u.user)
const timings: string[] = []

/** The users whose entry differs between two maps, with both entries. */
function differences(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>, keys: readonly string[] = users): string[] {
  return keys.filter((u) => a.get(u) !== b.get(u)).map((u) => `${u}: ${a.get(u)} / ${b.get(u)}`)
}

const notOnMember = (where: ReadonlyMap<string, string>) => [...where].filter(([, m]) => !MEMBER_IDS.includes(m)).map(([u, m]) => `${u}: ${m}`)

eachPeerSet(t, async (t, set) => {
  const t0 = Date.now()
  const c: PoolCluster = await startPoolCluster(t, set, { pinForMs: PIN_FOR_MS })
  timings.push(`${set.id}: cluster up with ${users.length} accounts in ${Date.now() - t0} ms`)
  /** Where each user lands with every member up and active: the hash's choice. */
  let home = new Map<string, string>()
  /** Where each user lands while VICTIM is down. */
  let moved = new Map<string, string>()
  let keeper: ReturnType<typeof keepPinsLive> | undefined
  t.teardown(() => keeper?.stop())

  /** Logs every user in through both proxies; checks both land on the same member and both instances' transport maps name it. */
  const everyone = async (t: Test, what: string): Promise<Map<string, string>> => {
    const started = Date.now()
    const { viaA, viaB } = await landingsThroughBoth(c, users)
    t.same(notOnMember(viaA), [], `${what}: every login through proxy A landed on a member`)
    t.same(notOnMember(viaB), [], `${what}: every login through proxy B landed on a member`)
    t.same(differences(viaA, viaB), [], `${what}: through proxy B (instance B) on the member proxy A (instance A) chose`)
    const [trA, trB] = [await transportMembers(c, c.A, users), await transportMembers(c, c.B, users)]
    t.same(differences(viaA, trA), [], `${what}: instance A's transport map names the member the logins landed on`)
    t.same(differences(viaA, trB), [], `${what}: instance B's transport map too`)
    timings.push(`${set.id}: ${what}: ${users.length * 2} logins and ${users.length * 2} transport lookups in ${Date.now() - started} ms`)
    return viaA
  }

  await t.test('every user lands on one member: logins through both proxies, the transport and local maps', async (t) => {
    home = await everyone(t, 'all up')
    const counts = perMember(home)
    t.same(outsideSigma(counts, WEIGHTS), [], `users per member ${JSON.stringify(counts)} within 5 sigma of the weights ${JSON.stringify(WEIGHTS)}`)
    for (const m of [c.A, c.B]) {
      const local = await transportMembers(c, m, users, 'local/m1')
      t.same(differences(home, local), [], `local/m1 on instance ${m === c.A ? 'A' : 'B'}: found for every mailbox of the pool, the pinned member's LMTP route`)
    }
  })

  await t.test('mail delivered over LMTP to the member the transport map names arrives, delivered there', async (t) => {
    for (const { id, address } of MEMBERS) {
      const user = users.find((u) => home.get(u) === id)!
      const subject = `pooled mail for ${user} via ${id}`
      const { session: lmtp } = await SmtpSession.open(c.pool.ports.lmtp, address)
      await lmtp.command('LHLO pool-routing.test')
      await lmtp.mailFrom('sender@example.net')
      t.equal((await lmtp.rcptTo(user)).code, 250, `${id} knows ${user}`)
      t.equal((await lmtp.data(`Subject: ${subject}\r\n\r\nhello\r\n`)).code, 250, `delivered to ${id}`)
      await lmtp.quit()
      await c.pool.members.get(id)!.waitForLog(new RegExp(`lmtp\\(${user.replace(/[.]/g, '\\.')}\\).*saved mail to INBOX`))
      const { session } = await ImapSession.open(c.proxyB.ports.imap)
      t.equal((await session.login(user, PASSWORD.get(user)!)).status, 'OK')
      t.equal((await session.id())['x-backend'], id, `${user} reads it on ${id} through proxy B`)
      t.match((await session.select()).untagged.join('\n'), /\* 2 EXISTS/)
      t.same([await session.subject(1), await session.subject(2)].includes(subject), true, 'the message is there')
      await session.logout()
    }
  })

  await t.test(`${VICTIM} stopped: within the fall bound its users land on the other members, nobody else moves`, async (t) => {
    const victims = users.filter((u) => home.get(u) === VICTIM)
    const others = users.filter((u) => home.get(u) !== VICTIM)
    const probe = victims[0]!
    const stoppedAt = Date.now()
    await c.pool.members.get(VICTIM)!.kill()
    const took = await within(
      `${probe}'s logins through both proxies on another member`,
      DOWN_WITHIN_MS,
      async () => {
        const [a, b] = [await landing(c.proxyA.ports.imap, probe, PASSWORD.get(probe)!), await landing(c.proxyB.ports.imap, probe, PASSWORD.get(probe)!)]
        return typeof a === 'string' && a === b && a !== VICTIM
      },
      stoppedAt,
    )
    timings.push(`${set.id}: ${VICTIM} stopped -> its users' logins elsewhere after ${took} ms`)
    t.pass(`${probe} (on ${VICTIM}) logs in elsewhere ${took} ms after ${VICTIM} stopped (bound ${DOWN_WITHIN_MS} ms: ${HEALTH.intervalMs} ms x (${HEALTH.fall} + 1) + ${HEALTH.timeoutMs} ms + margin)`)

    // From here until the expiry is measured, lookups every few seconds keep every pin live,
    // however long the login runs and the restart take on a loaded machine.
    keeper = keepPinsLive(c, users, KEEP_EVERY_MS)
    moved = await everyone(t, `${VICTIM} down`)
    const victimsMoved = victims.filter((u) => moved.get(u) !== VICTIM)
    const othersMoved = others.filter((u) => moved.get(u) !== home.get(u)).map((u) => `${u}: ${home.get(u)} -> ${moved.get(u)}`)
    t.equal(victimsMoved.length, victims.length, `all ${victims.length} users of ${VICTIM} moved: ${JSON.stringify(perMember(new Map(victims.map((u) => [u, moved.get(u)!]))))}`)
    t.same(othersMoved, [], `none of the other ${others.length} users moved`)
  })

  await t.test(`${VICTIM} restarted: its former users stay until their pins expire, then exactly they return`, async (t) => {
    const victims = users.filter((u) => home.get(u) === VICTIM)
    const startedAt = Date.now()
    await c.pool.members.get(VICTIM)!.restart()
    // Up again is seen through the instances' own verdicts: the health records both read.
    const took = await within(`${VICTIM} up on both instances`, UP_WITHIN_MS, async () => (await upOn(c, VICTIM)) === 2, startedAt)
    timings.push(`${set.id}: ${VICTIM} restarted -> up on both instances after ${took} ms`)

    const pinned = await everyone(t, `${VICTIM} back, pins live`)
    const lastLookup = Math.max(Date.now(), await keeper!.stop())
    t.same(differences(moved, pinned), [], `while their pins live, nobody moves: ${VICTIM}'s former users stay where they went`)
    t.equal(perMember(pinned)[VICTIM], 0, `nobody on ${VICTIM} yet`)

    // One former user of the victim keeps an IMAP session open through the wait, without a
    // lookup (NOOPs only), as an IDLE client does: its pin must not expire under the session.
    const holder = victims[1]!
    const held = await landOn(c.proxyA.ports.imap, holder, PASSWORD.get(holder)!)
    if ('refused' in held) throw new Error(`${holder}: ${held.refused}`)
    t.equal(held.member, moved.get(holder), `${holder} holds a session on ${held.member}`)

    // The pins' expiry is the behaviour under test, so the wait is its bound, not a guess: every
    // user was last looked up before lastLookup, and nothing looks them up meanwhile (health
    // probes do not), so past pinFor (and the batched refresh's lag) no pin may remain but the
    // one a live session keeps.
    const expiry = lastLookup + PIN_FOR_MS + PIN_SLACK_MS
    let noops = 0
    while (Date.now() < expiry) {
      const r = await held.session.command(['NOOP'])
      if (r.status !== 'OK') throw new Error(`${holder}'s held session: ${r.line}`)
      noops++
      await new Promise((r) => setTimeout(r, Math.min(2000, Math.max(0, expiry - Date.now()))))
    }
    t.ok(noops > 0, `${holder}'s session answered ${noops} NOOPs through the wait`)
    const after = await everyone(t, 'pins expired')
    const returned = victims.filter((u) => u !== holder)
    t.same(differences(home, after, [...returned, ...users.filter((u) => home.get(u) !== VICTIM)]), [], `every user is back where the hash puts them with every member up: ${returned.length} users returned to ${VICTIM}`)
    t.equal(after.get(holder), held.member, `${holder}, whose session stayed open on ${held.member}, stays there: the session keeps the pin`)
    t.same(splitUsers(await c.pool.who()), [], 'doveadm who: nobody on two members')
    await held.session.logout()
    const counts = perMember(after)
    t.same(outsideSigma(counts, WEIGHTS), [], `users per member ${JSON.stringify(counts)} within 5 sigma of the weights again`)
  })

  t.teardown(() => {
    timings.push(`${set.id}: whole peer set ${Date.now() - t0} ms`)
    t.comment(timings.filter((l) => l.startsWith(set.id)).join('\n'))
  })
})
