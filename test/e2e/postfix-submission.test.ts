// Acceptance for the submission front-end: a real Postfix running relay-main.cf +
// submission-main.cf and the services of submission-master.cf (rewritten only for ports, paths and
// the chroot column), mailhostd built from dist/ on a real slapd, smtp-sink as the backends.
// Logins come from XCLIENT LOGIN= on the nginx-proxy service, as the nginx mail proxy sends
// them; real SASL would need Dovecot, which the suite does not run. The port-587 service is
// checked for what it enforces before any login: STARTTLS first.
// - a login may send as its own address, its alternate address, an alias that delivers to it
//   and its address in an alias domain; each message is accepted and delivered;
// - as another user's address, or as a catch-all address that happens to reach it, it gets
//   553 5.7.1 "... is not owned by login ..." at RCPT, where the policy service is asked;
// - a send-as address added in LDAP (mailhostdSendAs) becomes allowed once the cache expires;
// - nothing is accepted without a login.

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { senderNotOwned } from '../../src/policy/replies.js'
import { freePorts } from '../harness/ports.js'
import { selfSignedPem, startPostfix, submissionCf } from '../harness/postfix.js'
import { SmtpSession, sendMail, type SendMailResult } from '../harness/smtp-client.js'
import { rejectedAtRcpt, startLdapCluster } from './ldap-cluster.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const body = (subject: string) => `Subject: ${subject}\r\n\r\nhello\r\n`
const rejected = rejectedAtRcpt

eachPeerSet(t, async (t, set) => {
  t.test('submission front-end: senders checked against the login', async (t) => {
    const { slapd, mx1, mx2, m } = await startLdapCluster(t, {
      // A send-as change in LDAP shows after at most ttl.
      config: { cache: { ttl: '1s', negativeTtl: '1s' }, policy: { ruleSets: { default: {}, mx: {}, submission: {} } } },
    })

    const [submissionPort, proxyPort] = (await freePorts(2)) as [number, number]
    const cf = await submissionCf({ socketmap: m.ports.socketmap, policy: m.ports.policy, submission: submissionPort, proxy: proxyPort })
    const postfix = await startPostfix({ set,
      snippet: cf.mainCf,
      masterCf: cf.masterCf,
      // Port 587 needs a certificate; Debian's main.cf names the snakeoil one.
      files: { 'tls.pem': await selfSignedPem() },
      mainCf: { smtpd_tls_chain_files: '$config_directory/tls.pem' },
    })
    t.teardown(() => postfix.stop())

    const submit = (login: string | undefined, from: string, to: string[], subject: string): Promise<SendMailResult> =>
      sendMail({ port: proxyPort, from, to, body: body(subject), ...(login === undefined ? {} : { xclient: { LOGIN: login } }) })

    await t.test('both services use the policy rule set "submission"', async (t) => {
      for (const service of [`127.0.0.1:${submissionPort}/inet`, `127.0.0.1:${proxyPort}/inet`]) {
        const r = await postfix.postconf(['-P', `${service}/smtpd_recipient_restrictions`])
        t.equal(r.stdout.trim(), `${service}/smtpd_recipient_restrictions = $mua_recipient_restrictions`)
      }
      const mua = await postfix.postconf(['-h', 'mua_recipient_restrictions'])
      t.match(mua.stdout.replace(/\s+/g, ' '), `check_policy_service { inet:127.0.0.1:${m.ports.policy}, timeout=10s,`)
      t.match(mua.stdout, 'policy_context=submission }')
      t.equal(mua.stderr, '', 'postconf has no complaint about the fragments')
    })

    await t.test('port 587 wants STARTTLS before anything, and offers AUTH only under TLS', async (t) => {
      const { session, banner } = await SmtpSession.open(submissionPort)
      try {
        t.equal(banner.code, 220)
        const ehlo = await session.ehlo()
        t.ok(ehlo.lines.some((l) => /^250[- ]STARTTLS$/.test(l)), 'STARTTLS offered')
        t.notOk(ehlo.lines.some((l) => /^250[- ]AUTH\b/.test(l)), 'no AUTH before TLS')
        const mail = await session.mailFrom('alice@example.org')
        t.equal(mail.code, 530)
        t.equal(mail.enhanced, '5.7.0')
        t.match(mail.text, /Must issue a STARTTLS command first/)
        await session.quit()
      } finally {
        session.close()
      }
    })

    await t.test('without a login nothing is accepted', async (t) => {
      const r = await submit(undefined, 'alice@example.org', ['bob@example.org'], 'anonymous')
      t.equal(r.rcptReplies[0]?.code, 554)
      t.match(r.rcptReplies[0]?.text, /Client host rejected: Access denied/)
      t.not(r.dataReply.code, 250)
    })

    await t.test("alice may send as her own, alternate, alias and alias-domain addresses", async (t) => {
      const senders = ['alice@example.org', 'alice.liddell@example.org', 'postmaster@example.org', 'alice@example.net']
      for (const from of senders) {
        const r = await submit('alice@example.org', from, ['bob@example.org'], `as ${from}`)
        t.equal(r.xclientReply?.code, 220, 'XCLIENT accepted from an authorized client')
        t.equal(r.mailReply.code, 250)
        t.equal(r.rcptReplies[0]?.code, 250, `RCPT accepted for sender ${from}`)
        t.equal(r.dataReply.code, 250, `message from ${from} queued`)
      }
      const got = await mx2.waitForMessages(senders.length, 30_000)
      t.same(got.map((g) => g.mailFrom).sort(), [...senders].sort(), 'every message reached bob on mx2 with its sender')
      for (const g of got) t.same(g.rcptTo, ['bob@example.org'])
    })

    await t.test("another user's address is refused at RCPT with 553 5.7.1", async (t) => {
      const r = await submit('alice@example.org', 'bob@example.org', ['carol@example.org'], 'forged')
      t.equal(r.mailReply.code, 250, 'MAIL FROM itself passes: the policy runs at RCPT')
      t.equal(r.rcptReplies[0]?.code, 553)
      t.equal(r.rcptReplies[0]?.enhanced, '5.7.1')
      t.equal(r.rcptReplies[0]?.text, rejected('carol@example.org', senderNotOwned('bob@example.org', 'alice@example.org')))
      t.not(r.dataReply.code, 250)
    })

    await t.test('a send-as address added in LDAP becomes allowed', async (t) => {
      const before = await submit('alice@example.org', 'team@example.org', ['bob@example.org'], 'team')
      t.equal(before.rcptReplies[0]?.code, 553, 'team@ is not alice\'s yet')
      t.equal(before.rcptReplies[0]?.text, rejected('bob@example.org', senderNotOwned('team@example.org', 'alice@example.org')))

      await slapd.ldapmodify('dn: uid=alice,ou=people,dc=example,dc=org\nchangetype: modify\nadd: mailhostdSendAs\nmailhostdSendAs: team@example.org\n')
      const after = await retryUntilAccepted(() => submit('alice@example.org', 'team@example.org', ['bob@example.org'], 'team'))
      t.equal(after.rcptReplies[0]?.code, 250, 'accepted once the cached login (ttl 1 s) is re-read')
      t.equal(after.dataReply.code, 250)
      const got = await mx2.waitForMessages(5, 30_000)
      t.equal(got[4]?.mailFrom, 'team@example.org')
    })

    await t.test('a catch-all address reaching bob is not his to send as, unless send-as says so', async (t) => {
      const before = await submit('bob@example.org', 'x@example.com', ['alice@example.org'], 'catch-all')
      t.equal(before.rcptReplies[0]?.code, 553)
      t.equal(before.rcptReplies[0]?.text, rejected('alice@example.org', senderNotOwned('x@example.com', 'bob@example.org')))

      // The domain form: every address of example.com.
      await slapd.ldapmodify('dn: uid=bob,ou=people,dc=example,dc=org\nchangetype: modify\nadd: mailhostdSendAs\nmailhostdSendAs: @example.com\n')
      const after = await retryUntilAccepted(() => submit('bob@example.org', 'x@example.com', ['alice@example.org'], 'catch-all'))
      t.equal(after.rcptReplies[0]?.code, 250)
      t.equal(after.dataReply.code, 250)
      const [got] = await mx1.waitForMessages(1, 30_000)
      t.equal(got?.mailFrom, 'x@example.com')
      t.same(got?.rcptTo, ['alice@example.org'])
      t.notMatch(await postfix.log(), /status=bounced/, 'nothing bounced')
    })

    /**
     * Sends until RCPT is accepted: a directory change shows once the cached answer expires
     * (cache.ttl, 1 s here). Gives up after 20 tries, 500 ms apart, and returns the last reply.
     */
    async function retryUntilAccepted(send: () => Promise<SendMailResult>): Promise<SendMailResult> {
      let r = await send()
      for (let i = 0; i < 20 && r.rcptReplies[0]?.code !== 250; i++) {
        await sleep(500)
        r = await send()
      }
      return r
    }
  })
})
