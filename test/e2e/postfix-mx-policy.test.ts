// Acceptance for the MX front-end with the policy service: a real Postfix running
// postfix/relay-main.cf (only the ports rewritten, check_policy_service included), mailhostd built
// from dist/ on a real slapd, smtp-sink standing in for the backends.
// - a known recipient passes and is delivered to its backend;
// - an unknown one is refused with the policy service's own text, not Postfix's map text;
// - when the policy service cannot be reached, the fragment's default_action defers;
// - while the directory is down (killed, and every cached answer older than maxStale), RCPT gets
//   a temporary error, for known and unknown recipients alike, and nothing is queued;
// - after the directory returns, the sender's retry is accepted and delivered.

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { DISABLED_RECIPIENT, UNKNOWN_RECIPIENT } from '../../src/policy/replies.js'
import { freePort } from '../harness/ports.js'
import { relayMainCf, startPostfix } from '../harness/postfix.js'
import { sendMail, type SendMailResult } from '../harness/smtp-client.js'
import { rejectedAtRcpt, startLdapCluster } from './ldap-cluster.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const body = (subject: string) => `From: sender@remote.test\r\nSubject: ${subject}\r\n\r\nhello\r\n`
const rejected = rejectedAtRcpt

eachPeerSet(t, async (t, set) => {
  t.test('MX front-end asking the policy service', async (t) => {
    const { slapd, mx1, mx2, m } = await startLdapCluster(t, {
      ldap: { timeout: '1s', connectTimeout: '500ms' },
      config: {
        // Short lifetimes so the outage outlasts every cached answer within the test.
        cache: { ttl: '1s', negativeTtl: '1s', maxStale: '2s' },
        circuit: { openFor: '1s' },
        // The MX rejects mail for disabled mailboxes (carol) instead of accepting it.
        policy: { ruleSets: { default: {}, mx: { recipients: { disabled: 'reject' } } } },
      },
    })

    const snippet = await relayMainCf({ socketmap: m.ports.socketmap, policy: m.ports.policy })
    const postfix = await startPostfix({ set, snippet })
    t.teardown(() => postfix.stop())

    await t.test('the fragment wires the policy service after reject_unauth_destination', async (t) => {
      const conf = await postfix.postconf(['-h', 'smtpd_recipient_restrictions'])
      t.match(conf.stdout.replace(/\s+/g, ' '), new RegExp(
        `^permit_mynetworks, reject_unauth_destination, check_policy_service \\{ inet:127\\.0\\.0\\.1:${m.ports.policy}, ` +
          'timeout=10s, \\{ default_action = DEFER_IF_PERMIT 4\\.3\\.0 mail policy service unavailable \\}, policy_context=mx \\}',
      ))
      t.equal(conf.stderr, '', 'postconf has no complaint about the fragment')
    })

    await t.test('known recipients pass and are delivered; an unknown one gets the policy text', async (t) => {
      const r = await sendMail({
        port: postfix.smtpPort,
        from: 'sender@remote.test',
        to: ['alice@example.org', 'nobody@example.org', 'Bob+news@Example.NET'],
        body: body('policy'),
      })
      t.same(r.rcptReplies.map((x) => x.code), [250, 550, 250])
      const unknown = r.rcptReplies[1]
      t.equal(unknown?.enhanced, '5.1.1')
      t.equal(unknown?.text, rejected('nobody@example.org', UNKNOWN_RECIPIENT), 'our text, not "User unknown in relay recipient table"')
      t.equal(r.dataReply.code, 250)
      const [atMx1] = await mx1.waitForMessages(1, 20_000)
      t.same(atMx1?.rcptTo, ['alice@example.org'])
      t.match(atMx1?.content, /^Subject: policy$/m)
      const [atMx2] = await mx2.waitForMessages(1, 20_000)
      t.same(atMx2?.rcptTo, ['bob+news@example.org'], 'the alias-domain address was rewritten (extension kept) and routed to mx2')
      // The 550 came from the policy service, asked with the rule set the fragment names.
      const decisions = m.logs().filter((l) => l.msg === 'policy' && l.recipient === 'nobody@example.org')
      t.same(decisions.map((l) => [l.rule_set, l.action]), [['mx', UNKNOWN_RECIPIENT]])
    })

    await t.test('a disabled mailbox is refused with 550 5.2.1 when the rule set says so', async (t) => {
      const r = await sendMail({ port: postfix.smtpPort, from: 'sender@remote.test', to: ['carol@example.org'], body: body('disabled') })
      t.equal(r.rcptReplies[0]?.code, 550)
      t.equal(r.rcptReplies[0]?.enhanced, '5.2.1')
      t.equal(r.rcptReplies[0]?.text, rejected('carol@example.org', DISABLED_RECIPIENT))
    })

    await t.test("policy service unreachable: two tries, then the fragment's default_action defers", async (t) => {
      const deadPort = await freePort()
      const other = await startPostfix({ set, snippet: await relayMainCf({ socketmap: m.ports.socketmap, policy: deadPort }) })
      t.teardown(() => other.stop())
      const r = await sendMail({ port: other.smtpPort, from: 'sender@remote.test', to: ['alice@example.org'], body: body('no policy') })
      t.equal(r.rcptReplies[0]?.code, 450)
      t.equal(r.rcptReplies[0]?.enhanced, '4.3.0')
      t.equal(r.rcptReplies[0]?.text, '<alice@example.org>: Recipient address rejected: mail policy service unavailable')
      const tries = (await other.log()).match(new RegExp(`problem talking to server 127\\.0\\.0\\.1:${deadPort}`, 'g')) ?? []
      t.equal(tries.length, 2, 'smtpd_policy_service_try_limit: 2 tries')
      t.same(await other.queue(), [], 'nothing accepted unchecked')
    })

    await t.test('directory down: RCPT gets a temporary error; the retry after it returns is delivered', async (t) => {
      await slapd.kill()
      // Past maxStale (2 s) no cached answer may be served any more.
      await sleep(2500)
      const during = await sendMail({ port: postfix.smtpPort, from: 'sender@remote.test', to: ['alice@example.org', 'nobody@example.org'], body: body('retry') })
      for (const [i, rcpt] of ['alice@example.org', 'nobody@example.org'].entries()) {
        const reply = during.rcptReplies[i]
        t.equal(Math.floor((reply?.code ?? 0) / 100), 4, `${rcpt}: 4xx, never 5xx, while the directory is down (${reply?.lines.join(' ')})`)
        t.match(reply?.enhanced, /^4\./)
      }
      t.not(during.dataReply.code, 250, 'no message accepted')
      t.same(await postfix.queue(), [], 'nothing queued, so nothing can bounce')

      await slapd.restart()
      // A sending MTA retries a 4xx later; here every second, until accepted (the circuit breaker
      // lets a trial call through after openFor, 1 s).
      let retry: SendMailResult | undefined
      for (let i = 0; i < 30; i++) {
        retry = await sendMail({ port: postfix.smtpPort, from: 'sender@remote.test', to: ['alice@example.org'], body: body('retry') })
        if (retry.rcptReplies[0]?.code === 250) break
        t.equal(Math.floor((retry.rcptReplies[0]?.code ?? 0) / 100), 4, 'still temporary while mailhostd reconnects')
        await sleep(1000)
      }
      t.equal(retry?.rcptReplies[0]?.code, 250, 'accepted after the directory returned')
      t.equal(retry?.dataReply.code, 250)
      const got = await mx1.waitForMessages(2, 20_000)
      t.same(got[1]?.rcptTo, ['alice@example.org'])
      t.match(got[1]?.content, /^Subject: retry$/m, 'the retried message reached the backend')
      await postfix.waitForQueue((q) => q.length === 0, 30_000)
      t.notMatch(await postfix.log(), /status=bounced/, 'nothing bounced')
    })
  })
})
