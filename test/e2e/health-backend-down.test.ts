// Acceptance: a backend stops, and the cluster notices, on each peer set (slapd, the Dovecots,
// Postfix and postmap all from the set). mailhostd (built, on a real slapd) probes two real
// Dovecot backends; a real Dovecot Lua proxy routes logins through it, and a real Postfix relay
// (postfix/relay-main.cf) routes mail with its maps. mx2's Dovecot is stopped:
// - within the rise/fall bound mx2 is marked down (admin API, the store's records);
// - bob's (mx2) IMAP and POP3 logins through the proxy get a temporary failure at once, far from
//   Dovecot's 30 s proxy timeout; alice (mx1) logs in as usual;
// - placement skips mx2; the transport map still answers mx2's route, so Postfix accepts mail for
//   bob and queues it;
// then mx2 is started again: within the bound it is up, bob logs in, and the queued mail reaches
// his mailbox on mx2. Nothing bounces.

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { adminApi, DEMO_TOKENS } from '../harness/admin-api.js'
import { helloSubject, startDovecot, startLoginCluster } from '../harness/dovecot.js'
import { imapLogin } from '../harness/imap-client.js'
import { postmapQuery, socketmap } from '../harness/mailhostd.js'
import { pop3Login } from '../harness/pop3-client.js'
import { relayMainCf, startPostfix } from '../harness/postfix.js'
import { sendMail } from '../harness/smtp-client.js'

// Short probe settings, so the test waits seconds rather than the defaults' 17.
const INTERVAL_MS = 1000
const TIMEOUT_MS = 1000
const RISE = 2
const FALL = 2
// A service that stops answering is down after FALL failed probes in a row. The last good probe
// may have run just before the stop; the next round starts within INTERVAL_MS, FALL rounds
// later the last failed probe ends within TIMEOUT_MS (a refused connection fails at once).
// Then the store write, every instance's reload, and the test's own polling: MARGIN_MS, generous
// for a loaded two-core machine. Up again: the same with RISE.
const MARGIN_MS = 4000
const DOWN_WITHIN_MS = INTERVAL_MS * FALL + TIMEOUT_MS + MARGIN_MS
const UP_WITHIN_MS = INTERVAL_MS * RISE + TIMEOUT_MS + MARGIN_MS
// "Fast": a third of the Lua passdb's and Dovecot's proxy timeouts (20 s and 30 s), where a login
// to a dead backend would otherwise wait.
const FAST_MS = 10_000

eachPeerSet(t, async (t, set) => {
  const c = await startLoginCluster(t, {
    set,
    ldap: (slapd) => ({ admin: { bindDN: slapd.rootDN, bindPassword: slapd.rootPassword } }),
    config: {
      health: { interval: `${INTERVAL_MS}ms`, timeout: `${TIMEOUT_MS}ms`, rise: RISE, fall: FALL },
      admin: { tokens: DEMO_TOKENS },
    },
  })
  const proxy = await startDovecot({ set, role: 'proxy-lua', httpPort: c.m.ports.http, secret: c.secret })
  t.teardown(() => proxy.stop())
  const postfix = await startPostfix({ set, snippet: await relayMainCf({ socketmap: c.m.ports.socketmap }) })
  t.teardown(() => postfix.stop())
  const api = adminApi(c.m.ports.http)

  type Health = Record<string, { state: string; since: string; detail: string | null }>
  const health = async (id: string) => ((await api.get(`/v1/backends/${id}`)).body as { health: Health }).health
  const allIn = (h: Health, state: string) => ['delivery', 'imap', 'pop3'].every((s) => h[s]?.state === state)
  /** Polls until `ok`; returns how long it took. Throws after `ms`. */
  const within = async (what: string, ms: number, ok: () => Promise<boolean>, from = Date.now()): Promise<number> => {
    for (;;) {
      if (await ok()) return Date.now() - from
      if (Date.now() - from > ms) throw new Error(`${what}: not within ${ms} ms`)
      await sleep(50)
    }
  }
  const mx2Route = `lmtp:inet:[127.0.0.1]:${c.mx2.ports.lmtp}`
  const message = (subject: string) => `From: sender@remote.test\r\nTo: bob@example.org\r\nSubject: ${subject}\r\n\r\nhello\r\n`

  t.test('before: both backends probed up, bob logs in on mx2', async (t) => {
    await within('both backends recorded up', 20_000, async () => allIn(await health('mx1'), 'up') && allIn(await health('mx2'), 'up'))
    const bob = await imapLogin(proxy.ports.imap, 'bob@example.org', 'builder')
    t.same([bob.login.status, bob.subject], ['OK', helloSubject('mx2')])
  })

  t.test('mx2 stops: marked down within the bound; logins fail fast, placement skips it, mail queues', async (t) => {
    const stoppedAt = Date.now()
    await c.mx2.kill()
    const took = await within('mx2 marked down', DOWN_WITHIN_MS, async () => allIn(await health('mx2'), 'down'), stoppedAt)
    t.pass(`mx2 marked down ${took} ms after it was stopped (bound ${DOWN_WITHIN_MS} ms: ${INTERVAL_MS} ms x ${FALL} + ${TIMEOUT_MS} ms + ${MARGIN_MS} ms)`)
    const h = await health('mx2')
    // Refused once the master is gone; reset by a master in the middle of stopping.
    t.match(h.imap, { state: 'down', detail: /^connection failed: ECONN(REFUSED|RESET)$/ }, 'with the reason')
    t.match(c.m.logs().find((l) => l.msg === 'backend service down' && l.backend === 'mx2' && l.service === 'imap'), { level: 'warn', reason: /^connection failed: / }, 'logged at warn')
    t.ok(allIn(await health('mx1'), 'up'), 'mx1 stays up')

    const imapStart = Date.now()
    const bob = await imapLogin(proxy.ports.imap, 'bob@example.org', 'builder')
    const imapMs = Date.now() - imapStart
    t.same([bob.login.status, bob.login.code], ['NO', 'UNAVAILABLE'], `bob's IMAP login: ${bob.login.line}`)
    t.ok(imapMs < FAST_MS, `answered in ${imapMs} ms, well under Dovecot's 30 s proxy timeout`)
    const popStart = Date.now()
    const bobPop = await pop3Login(proxy.ports.pop3, 'bob@example.org', 'builder')
    const popMs = Date.now() - popStart
    t.same([bobPop.login.ok, bobPop.login.text.startsWith('[SYS/TEMP]')], [false, true], `bob's POP3 login: -ERR ${bobPop.login.text}`)
    t.ok(popMs < FAST_MS, `answered in ${popMs} ms`)
    t.match(c.m.logs().filter((l) => l.msg === 'login refused' && l.user === 'bob@example.org').at(-1), { result: 'tempfail', reason: 'backend unavailable (down)' }, "mailhostd's reason")
    const alice = await imapLogin(proxy.ports.imap, 'alice@example.org', 'wonderland')
    t.same([alice.login.status, alice.subject], ['OK', helloSubject('mx1')], 'alice (mx1) logs in as usual')

    const placement = (await api.get('/v1/placement?domain=example.org')).body as unknown
    t.match(placement, { ok: true, backend: 'mx1', eligible: ['mx1'], excluded: [{ id: 'mx2', reason: 'down' }] }, 'placement skips mx2')

    const route = await postmapQuery(socketmap(c.m.ports.socketmap, 'transport'), 'bob@example.org', set)
    t.same([route.code, route.stdout.trim()], [0, mx2Route], "the transport map still answers mx2's route")
    const sent = await sendMail({ port: postfix.smtpPort, from: 'sender@remote.test', to: ['bob@example.org'], body: message('while mx2 was down') })
    t.same([sent.rcptReplies.map((r) => r.code), sent.dataReply.code], [[250], 250], 'Postfix accepts mail for bob')
    const queued = await postfix.waitForQueue((q) => q.length === 1 && q[0]!.recipients.every((r) => r.delay_reason !== undefined), 30_000)
    t.match(queued[0]!.recipients[0], { address: 'bob@example.org', delay_reason: /127\.0\.0\.1.*(refused|Connection refused)/i }, 'and queues it: mx2 refuses connections')
  })

  t.test('mx2 starts again: up within the bound, bob logs in, the queued mail is delivered', async (t) => {
    const downSince = (await health('mx2')).imap!.since
    const startedAt = Date.now()
    await c.mx2.restart()
    const took = await within('mx2 marked up', UP_WITHIN_MS, async () => allIn(await health('mx2'), 'up'), startedAt)
    t.pass(`mx2 marked up ${took} ms after it was started (bound ${UP_WITHIN_MS} ms: ${INTERVAL_MS} ms x ${RISE} + ${TIMEOUT_MS} ms + ${MARGIN_MS} ms)`)
    t.ok((await health('mx2')).imap!.since > downSince, 'since moved')

    const bob = await imapLogin(proxy.ports.imap, 'bob@example.org', 'builder')
    t.same([bob.login.status, bob.subject], ['OK', helloSubject('mx2')], 'bob logs in on mx2 again')
    const placement = (await api.get('/v1/placement?domain=example.org')).body as unknown
    t.match(placement, { ok: true, eligible: ['mx1', 'mx2'], excluded: [] }, 'placement may choose mx2 again')

    const subjects = async () => (await c.mx2.doveadm(['fetch', '-u', 'bob@example.org', 'hdr.subject', 'mailbox', 'INBOX'])).stdout
    await within('the queued mail delivered to bob on mx2', 60_000, async () => {
      if ((await subjects()).includes('while mx2 was down')) return true
      await postfix.flush()
      await sleep(500)
      return false
    })
    t.pass("the mail queued while mx2 was down is in bob's mailbox on mx2")
    await postfix.waitForQueue((q) => q.length === 0, 30_000)
    t.notMatch(await postfix.log(), /status=bounced/, 'nothing bounced')
  })
})
