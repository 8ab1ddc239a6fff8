// Acceptance (issue 15, shared-storage pools), on each peer set: every front door a pooled
// user's logins and mail come through reaches the one member the user is pinned to. The pool
// cluster of test/e2e/pool-cluster.ts (two mailhostd instances on one PostgreSQL, three real
// Dovecot members sharing one mail directory, two Dovecot Lua proxies), with both proxies also
// proxying LMTP (the shipped files' optional lmtp_proxy), plus a real nginx mail proxy asking
// instance A and a real Postfix relay front-end (postfix/relay-main.cf) using instance B's maps.
// For each user, these land on one member:
// - IMAP through Dovecot proxy A (the member's ID answer names it);
// - POP3 through Dovecot proxy B, IMAP and POP3 through nginx (the member's log says who logged in);
// - a message over LMTP through proxy B's LMTP proxy, and a message through Postfix (transport
//   map, then LMTP to the member): the member's log has the message's Message-ID;
// - both instances' transport maps.
// Then one user is moved to another member (move-user, through B): every front door follows the
// pin, not the hash.

import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { landing } from '../harness/dovecot-pool.js'
import { startNginx } from '../harness/nginx.js'
import { pop3Login } from '../harness/pop3-client.js'
import { relayMainCf, startPostfix } from '../harness/postfix.js'
import { sendMail, SmtpSession } from '../harness/smtp-client.js'
import { MEMBER_IDS, PASSWORD, POOL, perMember, startPoolCluster, transportMembers, USERS, type PoolCluster } from './pool-cluster.js'

t.setTimeout(10 * 60_000)

/** Enough users that every member has some (weights 1:2:1), few enough to go through six doors each. */
const SAMPLE = USERS.slice(0, 24)
/** Far longer than the file: every move is the test's doing. */
const PIN_FOR_MS = 30 * 60_000
/** A change made through one instance is seen by the other within this (docs/admin.md: 1 s); the rest is margin. */
const CHANGE_SEEN_MS = 10_000
/** A log line or a delivery is there within this, on a loaded machine. */
const LOGGED_MS = 20_000

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** How often `re` matches each member's log. */
async function logCounts(c: PoolCluster, re: RegExp): Promise<Map<string, number>> {
  const g = new RegExp(re.source, 'g')
  const counts = await Promise.all([...c.pool.members].map(async ([id, d]) => [id, (await d.log()).match(g)?.length ?? 0] as const))
  return new Map(counts)
}

/**
 * Runs `act` and answers the member(s) whose log gained a line matching `re` (joined with "+":
 * two would be the split the pool exists to prevent), waiting for the line to be written.
 */
async function servedBy(c: PoolCluster, re: RegExp, act: () => Promise<void>): Promise<string> {
  const before = await logCounts(c, re)
  await act()
  const deadline = Date.now() + LOGGED_MS
  for (;;) {
    const after = await logCounts(c, re)
    const gained = MEMBER_IDS.filter((id) => (after.get(id) ?? 0) > (before.get(id) ?? 0))
    if (gained.length > 0) return gained.join('+')
    if (Date.now() > deadline) {
      const tails = await Promise.all([...c.pool.members].map(async ([id, d]) => `${id}:\n${(await d.log()).split('\n').slice(-8).join('\n')}`))
      throw new Error(`no member logged ${String(re)} within ${LOGGED_MS} ms; the members' logs end:\n${tails.join('\n')}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
}

const message = (msgid: string, subject: string) => `Message-ID: <${msgid}>\r\nFrom: sender@remote.test\r\nSubject: ${subject}\r\n\r\nhello\r\n`
/** Dovecot's delivery line for a message (deliver_log_format's default starts with msgid=). */
const savedLine = (msgid: string) => new RegExp(`msgid=<${escape(msgid)}>.*saved mail to INBOX`)

eachPeerSet(t, async (t, set) => {
  const c = await startPoolCluster(t, set, { pinForMs: PIN_FOR_MS, users: SAMPLE, lmtpProxy: true })
  const nginx = await startNginx({ set, authHttpPort: c.A.ports.http, secret: c.secret })
  t.teardown(() => nginx.stop())
  const postfix = await startPostfix({ set, snippet: await relayMainCf({ socketmap: c.B.ports.socketmap }), mainCf: { myhostname: 'mx.harness.test' } })
  t.teardown(() => postfix.stop())

  /** Where each front door took `user`, by door. */
  const doors = async (user: string): Promise<Record<string, string>> => {
    const password = PASSWORD.get(user)!
    const imap = async (port: number) => {
      const l = await landing(port, user, password)
      return typeof l === 'string' ? l : `refused: ${l.refused}`
    }
    // "Login: user=<...>," on 2.3, "Logged in: user=<...> method=..." on 2.4.
    const popLogin = new RegExp(`pop3-login: (?:Info: )?[^\\n]*user=<${escape(user)}>`)
    const pop3 = (port: number) =>
      servedBy(c, popLogin, async () => {
        const r = await pop3Login(port, user, password)
        if (!r.login.ok) throw new Error(`${user}: POP3 login refused: ${r.login.text}`)
      })
    const id = () => `${randomBytes(6).toString('hex')}@pool-frontends.test`
    const lmtpId = id()
    const smtpId = id()
    const [trA, trB] = [await transportMembers(c, c.A, [user]), await transportMembers(c, c.B, [user])]
    return {
      'IMAP, Dovecot proxy A': await imap(c.proxyA.ports.imap),
      'POP3, Dovecot proxy B': await pop3(c.proxyB.ports.pop3),
      'IMAP, nginx': await imap(nginx.ports.imap),
      'POP3, nginx': await pop3(nginx.ports.pop3),
      'LMTP, Dovecot proxy B': await servedBy(c, savedLine(lmtpId), async () => {
        const { session } = await SmtpSession.open(c.proxyB.ports.lmtp!)
        await session.command('LHLO pool-frontends.test')
        await session.mailFrom('sender@remote.test')
        const rcpt = await session.rcptTo(user)
        if (rcpt.code !== 250) throw new Error(`${user}: the LMTP proxy answered RCPT ${rcpt.code} ${rcpt.text}`)
        const data = await session.data(message(lmtpId, `through the LMTP proxy to ${user}`))
        if (data.code !== 250) throw new Error(`${user}: the LMTP proxy answered DATA ${data.code} ${data.text}`)
        await session.quit()
      }),
      'SMTP, Postfix relay': await servedBy(c, savedLine(smtpId), async () => {
        const r = await sendMail({ port: postfix.smtpPort, from: 'sender@remote.test', to: [user], body: message(smtpId, `through Postfix to ${user}`) })
        if (r.rcptReplies[0]?.code !== 250 || r.dataReply.code !== 250) throw new Error(`${user}: Postfix answered RCPT ${r.rcptReplies[0]?.code}, DATA ${r.dataReply.code}`)
      }),
      'transport map, instance A': trA.get(user)!,
      'transport map, instance B': trB.get(user)!,
    }
  }

  /** Checks every door took `user` to `member`; answers it. */
  const allOn = async (t: Test, user: string, expected?: string): Promise<string> => {
    const where = await doors(user)
    const member = expected ?? where['IMAP, Dovecot proxy A']!
    const off = Object.entries(where).filter(([, m]) => m !== member)
    t.same(off, [], `${user}: every front door on ${member}${expected ? ' (where it was moved)' : ''}`)
    return member
  }

  const home = new Map<string, string>()
  await t.test('each user: IMAP and POP3 through both proxies and nginx, LMTP through the proxy and through Postfix, on one member', async (t) => {
    for (const u of SAMPLE) home.set(u.user, await allOn(t, u.user))
    const counts = perMember(home)
    t.ok(
      MEMBER_IDS.every((m) => (counts[m] ?? 0) > 0),
      `every member serves some of the ${SAMPLE.length} users: ${JSON.stringify(counts)}`,
    )
  })

  await t.test('a user moved to another member: every front door follows the pin, not the hash', async (t) => {
    const user = SAMPLE.find((u) => home.get(u.user) === 'm1')?.user
    if (user === undefined) throw new Error(`no user on m1 to move: ${JSON.stringify(perMember(home))}`)
    const target = 'm3'
    const r = await c.apiB.post(`/v1/pools/${POOL}/move-user`, { user, member: target })
    t.equal(r.status, 200, `move-user ${user} m1 -> ${target} through B: ${JSON.stringify(r.body)}`)
    // Proxy A asks instance A: the move made through B is seen there once the change arrives.
    const deadline = Date.now() + CHANGE_SEEN_MS
    while ((await landing(c.proxyA.ports.imap, user, PASSWORD.get(user)!)) !== target) {
      if (Date.now() > deadline) throw new Error(`${user}'s logins through proxy A not on ${target} within ${CHANGE_SEEN_MS} ms`)
      await new Promise((r) => setTimeout(r, 100))
    }
    await allOn(t, user, target)
  })
})
