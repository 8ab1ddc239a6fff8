// Acceptance with a real Postfix relay running postfix/relay-main.cf (only the port rewritten),
// mailhostd on a real slapd, and smtp-sink standing in for backends mx1 and mx2:
// - known recipients are accepted and delivered to their own backend, aliases rewritten;
// - an unknown recipient is rejected with 550 5.1.1;
// - while the directory is down, RCPT gets 451 4.3.0 and queued mail is deferred, not bounced;
// - when the directory returns, the deferred mail is delivered.

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { freePort } from '../harness/ports.js'
import { relayMainCf, startPostfix } from '../harness/postfix.js'
import { startMailhostd } from '../harness/mailhostd.js'
import { startSlapd, slapdDirectory } from '../harness/slapd.js'
import { sendMail } from '../harness/smtp-client.js'
import { startSmtpSink } from '../harness/smtp-sink.js'
import { demoClusterConfig } from './demo-table.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const body = (subject: string) => `From: sender@remote.test\r\nSubject: ${subject}\r\n\r\nhello\r\n`

eachPeerSet(t, async (t, set) => {
  t.test('Postfix relay routed by mailhostd', async (t) => {
    const slapd = await startSlapd({ set })
    t.teardown(() => slapd.stop())
    const mx1 = await startSmtpSink({ set })
    t.teardown(() => mx1.stop())
    const mx2Port = await freePort() // mx2's sink starts later: mail for it waits in the queue

    const cluster = demoClusterConfig()
    const m = await startMailhostd({
      domains: cluster.domains,
      backends: [
        { id: 'mx1', mailHosts: ['mx1.example.org'], address: '127.0.0.1', route: 'smtp', ports: { smtp: mx1.port } },
        { id: 'mx2', mailHosts: ['mx2.example.org'], address: '127.0.0.1', route: 'smtp', ports: { smtp: mx2Port } },
      ],
      directory: slapdDirectory(slapd, { timeout: '1s', connectTimeout: '500ms' }),
      // Short lifetimes so the outage outlasts every cached answer within the test.
      cache: { ttl: '1s', negativeTtl: '1s', maxStale: '2s' },
      circuit: { openFor: '1s' },
    })
    t.teardown(() => m.stop())

    const postfix = await startPostfix({ set, snippet: await relayMainCf({ socketmap: m.ports.socketmap }) })
    t.teardown(() => postfix.stop())

    // 1. Directory up: deliver to mx1, reject the unknown.
    const first = await sendMail({
      port: postfix.smtpPort,
      from: 'sender@remote.test',
      to: ['alice@example.org', 'postmaster@example.org', 'nobody@example.org'],
      body: body('one'),
    })
    t.same(first.rcptReplies.map((r) => r.code), [250, 250, 550], 'alice and postmaster accepted, nobody refused')
    t.equal(first.rcptReplies[2]?.enhanced, '5.1.1')
    t.match(first.rcptReplies[2]?.text, /User unknown in relay recipient table/)
    t.equal(first.dataReply.code, 250)
    const [delivered] = await mx1.waitForMessages(1, 20_000)
    // Postfix keeps both envelope recipients (their original recipients differ); both are alice.
    t.same([...new Set(delivered?.rcptTo)], ['alice@example.org'], 'postmaster rewritten to alice, delivered to mx1')

    // 2. Mail for mx2 is accepted but its backend is down: it waits in the queue.
    const second = await sendMail({
      port: postfix.smtpPort,
      from: 'sender@remote.test',
      to: ['Bob+Lists@Example.ORG', 'whoever@example.com'],
      body: body('two'),
    })
    t.same(second.rcptReplies.map((r) => r.code), [250, 250], 'extension and catch-all accepted')
    t.equal(second.dataReply.code, 250)
    await postfix.waitForQueue((q) => q.length === 1 && q[0]!.recipients.every((r) => r.delay_reason !== undefined), 30_000)

    // 3. The directory dies. Once the cache is past maxStale, nothing can be answered.
    await slapd.kill()
    await sleep(2500)
    const during = await sendMail({ port: postfix.smtpPort, from: 'sender@remote.test', to: ['carol@example.org', 'alice@example.org'], body: body('three') })
    t.same(during.rcptReplies.map((r) => `${r.code} ${r.enhanced ?? ''}`), ['451 4.3.0', '451 4.3.0'], 'RCPT deferred with 451 4.3.0, never 550')

    const mx2 = await startSmtpSink({ set, port: mx2Port })
    t.teardown(() => mx2.stop())
    await postfix.flush()
    await postfix.waitForLog(/(address resolver failure|transport_maps lookup failure|Temporary lookup failure)/, 30_000)
    const queued = await postfix.queue()
    t.equal(queued.length, 1, 'the message is still queued while the directory is down')
    t.equal((await mx2.messages()).length, 0, 'nothing delivered on a guess')
    t.notMatch(await postfix.log(), /status=bounced/, 'nothing bounced')

    // 4. The directory returns: the deferred mail goes to mx2.
    await slapd.restart()
    let got = await mx2.messages()
    for (let i = 0; i < 30 && got.length === 0; i++) {
      await postfix.flush()
      await sleep(1000)
      got = await mx2.messages()
    }
    t.equal(got.length, 1, 'deferred mail delivered after the directory returns')
    t.same([...(got[0]?.rcptTo ?? [])].sort(), ['Bob+Lists@Example.ORG', 'bob@example.org'].sort(), 'both recipients, rewritten by the alias map where needed')
    await postfix.waitForQueue((q) => q.length === 0, 30_000)
    t.notMatch(await postfix.log(), /status=bounced/, 'still nothing bounced')
  })
})
