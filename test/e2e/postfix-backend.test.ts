// Acceptance for a backend mail store (Cyrus Murder style): a real Postfix running
// postfix/backend-main.cf for backend mx2 (only mailhostd's port and the front-end's address
// rewritten), mailhostd built from dist/ on the demo SQL directory, smtp-sink standing in for
// mx2's LMTP server (Dovecot) and for the front-end.
// - from outside, only mx2's own mailboxes are accepted, and delivered to mx2's LMTP; every other
//   cluster address (a mailbox on mx1, an alias-domain or catch-all address) is refused 550 5.1.1;
// - mail submitted on the host (sendmail) goes to mx2's LMTP for mx2's mailboxes and to the
//   front-end for everything else; the host's own mail (root) stays local.

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { freePort } from '../harness/ports.js'
import { backendMainCf, startPostfix } from '../harness/postfix.js'
import { ROOT, startMailhostd } from '../harness/mailhostd.js'
import { sendMail } from '../harness/smtp-client.js'
import { startSmtpSink } from '../harness/smtp-sink.js'
import { demoClusterConfig } from './demo-table.js'

const body = (subject: string) => `Subject: ${subject}\r\n\r\nhello\r\n`

eachPeerSet(t, async (t, set) => {
  t.test('backend mx2 with local/mx2 as recipient table and transport', async (t) => {
    const lmtp = await startSmtpSink({ set, lmtp: true })
    t.teardown(() => lmtp.stop())
    const frontEnd = await startSmtpSink({ set })
    t.teardown(() => frontEnd.stop())
    // mx1's LMTP: nothing listens; nothing may be sent there from mx2.
    const mx1Lmtp = await freePort()

    const m = await startMailhostd(
      {
        domains: demoClusterConfig().domains,
        backends: [
          { id: 'mx1', mailHosts: ['mx1.example.org'], address: '127.0.0.1', route: 'lmtp', ports: { lmtp: mx1Lmtp } },
          { id: 'mx2', mailHosts: ['mx2.example.org'], address: '127.0.0.1', route: 'lmtp', ports: { lmtp: lmtp.port } },
        ],
        directory: { type: 'sql' },
      },
      { args: ['--seed-sql', `${ROOT}/fixtures/demo/directory.sql`] },
    )
    t.teardown(() => m.stop())

    const snippet = await backendMainCf({ socketmap: m.ports.socketmap, frontEnd: frontEnd.port })
    const postfix = await startPostfix({ set, snippet, mainCf: { myhostname: 'mx2.harness.test' } })
    t.teardown(() => postfix.stop())

    await t.test('one map for both jobs', async (t) => {
      const conf = await postfix.postconf(['-h', 'local_recipient_maps', 'transport_maps', 'local_transport', 'relayhost'])
      const map = `socketmap:inet:127.0.0.1:${m.ports.socketmap}:local/mx2`
      t.same(conf.stdout.trim().split('\n').map((l) => l.replace(/\s+/g, ' ')), [
        map,
        `inline:{$myhostname=local:$myhostname, localhost=local:$myhostname}, ${map}`,
        `relay:[127.0.0.1]:${frontEnd.port}`,
        `[127.0.0.1]:${frontEnd.port}`,
      ])
      t.equal(conf.stderr, '', 'postconf has no complaint about the fragment')
    })

    await t.test("from outside: mx2's mailboxes only, delivered to mx2's LMTP", async (t) => {
      const to = ['bob@example.org', 'Bob+tag@Example.ORG', 'alice@example.org', 'bob@example.net', 'x@example.com', 'postmaster@example.org']
      const r = await sendMail({ port: postfix.smtpPort, from: 'sender@remote.test', to, body: body('inbound') })
      t.same(r.rcptReplies.map((x) => x.code), [250, 250, 550, 550, 550, 250])
      for (const i of [2, 3, 4]) {
        t.equal(r.rcptReplies[i]?.enhanced, '5.1.1')
        t.equal(r.rcptReplies[i]?.text, `<${to[i]}>: Recipient address rejected: User unknown in local recipient table`, `${to[i]} is not a mailbox on mx2`)
      }
      t.equal(r.dataReply.code, 250)

      const [delivered] = await lmtp.waitForMessages(1, 20_000)
      t.equal(delivered?.proto, 'LMTP')
      t.same(delivered?.rcptTo.slice().sort(), ['Bob+tag@Example.ORG', 'bob@example.org'], "both of bob's addresses, through the route local/mx2 answered")
      t.match(delivered?.content, /^Subject: inbound$/m)
      // Postfix accepts postmaster@ in a local domain without asking local_recipient_maps (RFC
      // 5321); local/mx2 does not know it, so it goes to the front-end, which knows the alias.
      const [forwarded] = await frontEnd.waitForMessages(1, 20_000)
      t.same(forwarded?.rcptTo, ['postmaster@example.org'])
    })

    await t.test('submitted on the host: own mailboxes to LMTP, everything else to the front-end', async (t) => {
      const r = await postfix.sendmail('webmail@example.org', ['alice@example.org', 'bob@example.org', 'someone@elsewhere.test'], 'Subject: local\n\nhello\n')
      t.equal(r.code, 0, `sendmail queued the message ${r.stderr}`)

      const atLmtp = await lmtp.waitForMessages(2, 20_000)
      t.same(atLmtp[1]?.rcptTo, ['bob@example.org'], "bob's copy went straight to mx2's LMTP")
      t.equal(atLmtp[1]?.mailFrom, 'webmail@example.org')
      // alice through local_transport, the outside address through relayhost: two deliveries.
      const atFront = (await frontEnd.waitForMessages(3, 20_000)).slice(1)
      t.same(atFront.flatMap((msg) => msg.rcptTo).sort(), ['alice@example.org', 'someone@elsewhere.test'], "mx1's mailbox and the outside world through the front-end")
      t.same(atFront.map((msg) => msg.mailFrom), ['webmail@example.org', 'webmail@example.org'])
      t.notMatch(await postfix.log(), new RegExp(`relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${mx1Lmtp}\\b`), 'mx2 never delivers to mx1 itself')
    })

    await t.test("the host's own mail is routed to local(8), not to the front-end", async (t) => {
      const r = await postfix.sendmail('root@mx2.harness.test', ['root'], 'Subject: cron\n\nhello\n')
      t.equal(r.code, 0)
      // The harness runs no local(8) (it would write to the system's mailboxes), so the message
      // waits in the queue; the log shows which transport it was given.
      await postfix.waitForLog(/to=<root@mx2\.harness\.test>, orig_to=<root>, .*status=deferred \(mail transport unavailable\)/, 20_000)
      t.match(await postfix.log(), /connect to transport private\/local:/)
      t.notOk((await frontEnd.messages()).some((msg) => msg.rcptTo.some((a) => a.startsWith('root@'))), 'nothing for root at the front-end')
      t.notMatch(await postfix.log(), /status=bounced/, 'nothing bounced')
    })
  })
})
