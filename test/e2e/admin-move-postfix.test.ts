// Acceptance: a mailbox move seen by a real Postfix relay (postfix/relay-main.cf, ports rewritten)
// in front of two smtp-sinks standing in for backends mx1 and mx2, with mailhostd on a real slapd
// writing through its admin bind. bob lives on mx2; a message for him is queued before the move.
// While he is being moved to mx1:
// - the queued message stays deferred (address resolver failure), reaches neither backend, and
//   does not bounce;
// - a new RCPT to bob gets 451 4.3.0, never 5xx, while other recipients are accepted as usual.
// Postfix caches resolved addresses (qmgr for 30 s, smtpd per process): where that matters the
// test makes Postfix resolve afresh, and says why.
// Once the move is completed through the API:
// - the queued message is delivered to mx1, the new backend, and never to mx2;
// - new mail for bob is accepted and delivered to mx1.

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { adminApi, DEMO_TOKENS } from '../harness/admin-api.js'
import { startMailhostd } from '../harness/mailhostd.js'
import { freePort } from '../harness/ports.js'
import { relayMainCf, startPostfix } from '../harness/postfix.js'
import { startSlapd, slapdDirectory } from '../harness/slapd.js'
import { sendMail } from '../harness/smtp-client.js'
import { startSmtpSink, type Sink, type SinkMessage } from '../harness/smtp-sink.js'
import { demoClusterConfig } from './demo-table.js'

const message = (subject: string) => `From: sender@remote.test\r\nSubject: ${subject}\r\n\r\nhello\r\n`
const subjectOf = (m: SinkMessage) => /^Subject: (.*)$/m.exec(m.content)?.[1]
const subjects = async (sink: Sink) => (await sink.messages()).map(subjectOf)

eachPeerSet(t, async (t, set) => {
  t.test('a move in progress defers mail in Postfix; completion delivers it to the new backend', async (t) => {
    const slapd = await startSlapd({ set })
    t.teardown(() => slapd.stop())
    const mx1 = await startSmtpSink({ set })
    t.teardown(() => mx1.stop())
    // mx2's sink starts later: until then the message for bob waits in Postfix's queue.
    const mx2Port = await freePort()

    const m = await startMailhostd({
      domains: demoClusterConfig().domains,
      backends: [
        { id: 'mx1', mailHosts: ['mx1.example.org'], address: '127.0.0.1', route: 'smtp', ports: { smtp: mx1.port } },
        { id: 'mx2', mailHosts: ['mx2.example.org'], address: '127.0.0.1', route: 'smtp', ports: { smtp: mx2Port } },
      ],
      directory: slapdDirectory(slapd, { admin: { bindDN: slapd.rootDN, bindPassword: slapd.rootPassword } }),
      // No settle time (admin.moves.settle, tested in test/admin/move-settle.test.ts): this test
      // controls what Postfix resolved before the move itself.
      admin: { tokens: DEMO_TOKENS, moves: { settle: '0s' } },
    })
    t.teardown(() => m.stop())
    const api = adminApi(m.ports.http)
    const lookup = async (map: string, key: string) =>
      (await api.get(`/v1/lookup?map=${map}&key=${encodeURIComponent(key)}`)).body as { outcome: string; value?: string }

    const postfix = await startPostfix({ set, snippet: await relayMainCf({ socketmap: m.ports.socketmap }) })
    t.teardown(() => postfix.stop())

    // Postfix's resolver client in qmgr keeps the last address it resolved, with its route or its
    // failure, for 30 s (resolve_clnt.c's one-entry cache): qmgr sees a move start or complete the
    // next time it resolves the address afresh. Until then it routes by what it knew: a message for
    // bob retried within 30 s of its last resolution goes to mx2 even though the move has started
    // (seen here without this step: delivered to mx2 half a second after the move began). A
    // message for alice makes qmgr resolve another address, so bob's next attempt asks the
    // transport map again. In production the same window means mail can still reach the source
    // backend up to 30 s after a move starts, after a copy hook may have begun copying.
    let forgets = 0
    const forgetLastResolved = async () => {
      const subject = `for alice ${++forgets}`
      const r = await sendMail({ port: postfix.smtpPort, from: 'sender@remote.test', to: ['alice@example.org'], body: message(subject) })
      t.same([r.rcptReplies[0]?.code, r.dataReply.code], [250, 250], `${subject}: accepted`)
      const deadline = Date.now() + 30_000
      while (!(await subjects(mx1)).includes(subject) && Date.now() < deadline) await sleep(50)
      t.ok((await subjects(mx1)).includes(subject), `${subject}: delivered to mx1`)
    }

    // 1. Before the move: a message for bob, handed to this Postfix by local submission, is queued
    // since mx2 is not listening. (Local submission: no smtpd has resolved bob's address.)
    const submitted = await postfix.sendmail('sender@remote.test', ['bob@example.org'], message('queued before the move'))
    t.equal(submitted.code, 0, `sendmail: ${submitted.stderr}`)
    await postfix.waitForLog(new RegExp(`to=<bob@example\\.org>, relay=none, .*status=deferred \\(connect to 127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${mx2Port}: Connection refused\\)`))
    const [queued] = await postfix.waitForQueue((q) => q.length === 1 && q[0]!.recipients.every((r) => r.delay_reason !== undefined))
    t.same(queued!.recipients.map((r) => r.address), ['bob@example.org'], 'it waits in the queue for mx2')

    // 2. Start the move of bob to mx1. No hook is configured: the move is copied at once.
    const started = await api.post('/v1/moves', { target: 'mx1', accounts: ['bob@example.org'] })
    t.equal(started.status, 201, JSON.stringify(started.body))
    const move = started.body.moves[0]
    t.match(move, { account: 'bob@example.org', source: { backend: 'mx2', mailHost: 'mx2.example.org' }, target: 'mx1', state: 'copied' })
    t.match((await api.get('/v1/accounts/bob@example.org')).body, { backend: 'mx2', moving: true }, 'bob is moving, still on mx2')
    t.match(await lookup('transport', 'bob@example.org'), { outcome: 'temp' }, 'transport: TEMP for bob')
    t.match(await lookup('recipient', 'bob@example.org'), { outcome: 'found', value: 'mx2.example.org' }, 'recipient: bob still exists')
    await forgetLastResolved()

    // 3. Both backends up: flushing the queue routes nothing for bob.
    const mx2 = await startSmtpSink({ set, port: mx2Port })
    t.teardown(() => mx2.stop())
    await postfix.flush()
    await postfix.waitForLog(/to=<bob@example\.org>, relay=none, .*status=deferred \(address resolver failure\)/)
    t.match(await postfix.log(), /warning: transport_maps lookup failure/, "trivial-rewrite saw the transport map's TEMP")
    const during = await postfix.queue()
    t.same(during.map((q) => q.queue_id), [queued!.queue_id], 'the message is still queued during the move')
    t.same(await subjects(mx1), ['for alice 1'], 'nothing for bob reached mx1')
    t.same(await subjects(mx2), [], 'nothing reached mx2, the old backend')

    // A new message during the move: bob is refused temporarily, alice (not moving) accepted.
    const duringSmtp = await sendMail({
      port: postfix.smtpPort,
      from: 'sender@remote.test',
      to: ['bob@example.org', 'alice@example.org'],
      body: message('sent during the move'),
    })
    const [bobRcpt, aliceRcpt] = duringSmtp.rcptReplies
    t.same([bobRcpt?.code, bobRcpt?.enhanced], [451, '4.3.0'], `RCPT bob during the move: ${bobRcpt?.lines.join(' ')}`)
    t.match(bobRcpt?.text, /Temporary lookup failure/)
    t.equal(aliceRcpt?.code, 250, 'RCPT alice during the move: accepted')
    t.equal(duringSmtp.dataReply.code, 250)
    const toAlice = (await mx1.waitForMessages(2)).find((msg) => subjectOf(msg) === 'sent during the move')
    t.same(toAlice?.rcptTo, ['alice@example.org'], 'alice gets her copy on mx1; bob was not a recipient')
    t.same(await subjects(mx2), [], 'still nothing on mx2')
    t.same((await postfix.queue()).map((q) => q.queue_id), [queued!.queue_id], 'still only the message for bob queued')
    t.notMatch(await postfix.log(), /status=bounced/, 'nothing bounced during the move')

    // 4. Complete the move: the queued message goes to mx1.
    const completed = await api.post(`/v1/moves/${move.id}/complete`)
    t.equal(completed.status, 200, JSON.stringify(completed.body))
    t.equal(completed.body.state, 'completed')
    t.match((await api.get('/v1/accounts/bob@example.org')).body, { backend: 'mx1', mailHost: 'mx1.example.org', moving: false }, 'bob is on mx1')
    t.match(await lookup('transport', 'bob@example.org'), { outcome: 'found', value: `smtp:[127.0.0.1]:${mx1.port}` }, "transport: mx1's route")

    // qmgr may still hold bob's failed resolution (above): make it forget, then flush.
    await forgetLastResolved()
    const deadline = Date.now() + 60_000
    while (!(await subjects(mx1)).includes('queued before the move') && Date.now() < deadline) {
      await postfix.flush()
      await sleep(500)
    }
    const delivered = (await mx1.messages()).filter((msg) => subjectOf(msg) === 'queued before the move')
    t.equal(delivered.length, 1, 'the deferred message was delivered to mx1, the new backend')
    t.same(delivered[0]?.rcptTo, ['bob@example.org'])
    await postfix.waitForQueue((q) => q.length === 0)
    t.pass('the queue is empty')
    await postfix.waitForLog(new RegExp(`to=<bob@example\\.org>, relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${mx1.port}, .*status=sent`))

    // 5. New mail for bob is accepted and delivered to mx1. smtpd keeps every (sender, recipient)
    // resolution, failures included, in a cache that lives as long as the process (smtpd_resolve.c):
    // the smtpd that answered 451 above may go on answering 451 for bob from sender@remote.test
    // until it exits (max_idle, max_use), and that sender retries later. A sender smtpd has not
    // resolved bob for is asked afresh.
    const after = await sendMail({ port: postfix.smtpPort, from: 'other@remote.test', to: ['bob@example.org'], body: message('sent after the move') })
    t.same([after.rcptReplies[0]?.code, after.dataReply.code], [250, 250], `RCPT bob after the move: ${after.rcptReplies[0]?.lines.join(' ')}`)
    const all = await mx1.waitForMessages(5)
    const afterMsg = all.find((msg) => subjectOf(msg) === 'sent after the move')
    t.same(afterMsg?.rcptTo, ['bob@example.org'], 'new mail for bob delivered to mx1')
    t.same(await subjects(mx2), [], 'mx2 never got anything for bob')
    t.notMatch(await postfix.log(), /status=bounced/, 'nothing bounced at any point')
  })
})
