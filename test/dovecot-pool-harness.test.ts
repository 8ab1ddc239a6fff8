// Proves the shared-storage pool harness (test/harness/dovecot-pool.ts) without mailhostd, on each
// peer set: three Dovecot backends on three loopback addresses and the same ports serve one mail
// directory; each names itself in its IMAP ID answer; mail delivered over LMTP to one member is
// read on another; `doveadm who` on each member lists exactly the sessions held there; doveadm's
// HTTP API on a member kicks a user's sessions there; a member killed by PID takes its sessions
// with it (its mail processes do not outlive the master) and, restarted, comes back on its address.

import t from 'tap'
import { eachPeerSet } from './harness/peer-set.js'
import { helloSubject } from './harness/dovecot.js'
import { landing, landOn, splitUsers, startSharedPool, type Landing } from './harness/dovecot-pool.js'
import { ImapSession } from './harness/imap-client.js'
import { SmtpSession } from './harness/smtp-client.js'

const USERS = [
  { user: 'ann@example.org', password: 'ann-pw' },
  { user: 'ben@example.org', password: 'ben-pw' },
]
const MEMBERS = [
  { id: 'p1', address: '127.0.0.21' },
  { id: 'p2', address: '127.0.0.22' },
  { id: 'p3', address: '127.0.0.23' },
]

const API_KEY = 'pool-harness-key'

eachPeerSet(t, async (t, set) => {
  const pool = await startSharedPool(t, { set, name: 'pool9', members: MEMBERS, users: USERS, doveadmApiKey: API_KEY })

  t.test('every member on its own address, the same ports, naming itself', async (t) => {
    t.same([...pool.members.keys()], ['p1', 'p2', 'p3'])
    for (const { id, address } of MEMBERS) {
      const d = pool.members.get(id)!
      t.same([d.address, d.ports], [address, pool.ports], `${id} listens on ${address}`)
      t.equal(pool.memberAt(address), id)
      const { session } = await ImapSession.open(pool.ports.imap, { host: address })
      t.equal((await session.login('ann@example.org', 'ann-pw')).status, 'OK', `${id} accepts ann's password`)
      t.equal((await session.id())['x-backend'], id, `${id} answers ID with x-backend=${id}`)
      await session.select()
      t.equal(await session.subject(1), helloSubject('pool9'), 'the one shared mailbox')
      await session.logout()
    }
  })

  t.test('shared storage: delivered to one member, read on another', async (t) => {
    const { session: lmtp } = await SmtpSession.open(pool.ports.lmtp, '127.0.0.21')
    await lmtp.command('LHLO harness.test')
    await lmtp.mailFrom('sender@example.net')
    t.equal((await lmtp.rcptTo('ben@example.org')).code, 250)
    t.equal((await lmtp.data('Subject: via p1\n\nhi\n')).code, 250, 'delivered over LMTP to p1')
    await lmtp.quit()
    const { session } = await ImapSession.open(pool.ports.imap, { host: '127.0.0.23' })
    await session.login('ben@example.org', 'ben-pw')
    t.match((await session.select()).untagged.join('\n'), /\* 2 EXISTS/, 'p3 sees two messages')
    t.same([await session.subject(1), await session.subject(2)].sort(), [helloSubject('pool9'), 'via p1'].sort(), 'including the one delivered to p1')
    await session.logout()
  })

  t.test('doveadm who per member lists the sessions held there', async (t) => {
    const held: Landing[] = []
    for (const [host, user, password] of [
      ['127.0.0.21', 'ann@example.org', 'ann-pw'],
      ['127.0.0.22', 'ann@example.org', 'ann-pw'],
      ['127.0.0.22', 'ben@example.org', 'ben-pw'],
    ] as const) {
      const l = await landOn(pool.ports.imap, user, password, { host })
      if ('refused' in l) throw new Error(l.refused)
      held.push(l)
    }
    t.same(
      held.map((l) => l.member),
      ['p1', 'p2', 'p2'],
    )
    const where = await pool.who()
    t.same(Object.fromEntries(where), { 'ann@example.org': ['p1', 'p2'], 'ben@example.org': ['p2'] })
    t.same(splitUsers(where), [['ann@example.org', ['p1', 'p2']]], 'ann is split over p1 and p2')
    t.same(Object.fromEntries(await pool.members.get('p2')!.who()), { 'ann@example.org': 1, 'ben@example.org': 1 }, 'connections per user on p2')
    for (const l of held) await l.session.logout()
    let after = await pool.who()
    for (let i = 0; i < 50 && after.size > 0; i++) after = await pool.who()
    t.same(after.size, 0, 'gone once logged out')
  })

  t.test("doveadm's HTTP API on each member kicks the user's sessions there", async (t) => {
    const held = await landOn(pool.ports.imap, 'ben@example.org', 'ben-pw', { host: '127.0.0.23' })
    if ('refused' in held) throw new Error(held.refused)
    const res = await fetch(`http://127.0.0.23:${pool.ports.doveadm}/doveadm/v1`, {
      method: 'POST',
      headers: { authorization: `X-Dovecot-API ${Buffer.from(API_KEY).toString('base64')}`, 'content-type': 'application/json' },
      body: JSON.stringify([['kick', { mask: 'ben@example.org' }, 'k1']]),
    })
    t.equal(res.status, 200, 'POST /doveadm/v1 kick')
    t.match(await res.text(), /"doveadmResponse"/, 'a doveadm answer')
    const noop = await held.session.command(['NOOP']).catch((e: Error) => ({ status: 'BAD', closed: true, line: e.message }))
    t.match(noop, { status: 'BAD', closed: true }, `ben's session on p3 was kicked: ${noop.line}`)
    t.same((await pool.who()).get('ben@example.org'), undefined, 'no session of ben left')
  })

  t.test('a member killed and restarted by PID', async (t) => {
    const p2 = pool.members.get('p2')!
    const pid = p2.pid
    const l = await landOn(pool.ports.imap, 'ann@example.org', 'ann-pw', { host: '127.0.0.22' })
    if ('refused' in l) throw new Error(l.refused)
    const killedAt = Date.now()
    await p2.kill()
    const stoppedIn = Date.now() - killedAt
    t.same([...(await p2.who())], [], 'killed: no sessions')
    const ended = (await l.session.closed) - killedAt
    t.ok(ended <= stoppedIn, `its session ended with it (${ended} ms after the kill began, the kill took ${stoppedIn} ms): every process got SIGTERM, not the master alone`)
    t.equal(await landing(pool.ports.imap, 'ann@example.org', 'ann-pw', { host: '127.0.0.21' }), 'p1', 'p1 still serves ann')
    await p2.restart()
    t.not(p2.pid, pid, 'a new master')
    t.equal(await landing(pool.ports.imap, 'ann@example.org', 'ann-pw', { host: '127.0.0.22' }), 'p2', 'p2 serves ann again')
  })
})
