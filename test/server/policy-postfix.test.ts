// The policy listener against a real Postfix smtpd (3.7 and 3.10, a throwaway instance on loopback) asking
// it through check_policy_service: the attributes Postfix sends, how each action reaches the SMTP
// client, connection reuse, XCLIENT logins, and Postfix's retry-then-defer when we close
// without a reply. The service is a fake; the wire and the peer are real.
//
// What Postfix 3.7.11 made of each action at RCPT (recorded here and in the report):
//   DUNNO                            -> 250 2.1.5 Ok
//   550 5.1.1 our text               -> 550 5.1.1 <rcpt>: Recipient address rejected: our text
//   DEFER_IF_PERMIT 4.3.0 our text   -> 450 4.3.0 <rcpt>: Recipient address rejected: our text
//                                       (the DSN in the text replaces DEFER_IF_PERMIT's default 4.7.1)
//   450 4.7.1 text                   -> 450 4.7.1 <rcpt>: Recipient address rejected: text
//   553 5.7.1 text (by sender)       -> 553 5.7.1 <rcpt>: Recipient address rejected: text
//                                       (asked from smtpd_recipient_restrictions, so it names the recipient)
//   no reply, connection closed      -> two tries 1 s apart, then
//                                       451 4.3.5 <rcpt>: Recipient address rejected: Server configuration problem

import t, { type Test } from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { silentLogger } from '../../src/log.js'
import type { PolicyRequest } from '../../src/policy/types.js'
import { createPolicyServer } from '../../src/server/index.js'
import { startPostfix } from '../harness/postfix.js'
import { SmtpSession, type SmtpReply } from '../harness/smtp-client.js'
import { countingProxy } from './counting-proxy.js'
import { FakePolicy } from './fake-policy.js'
import { defaultLimits } from './flavors.js'

/** The attribute names Postfix 3.7 sends at RCPT, in its order (protocols.md §3). */
const POSTFIX_37_ATTRIBUTES = [
  'request',
  'protocol_state',
  'protocol_name',
  'client_address',
  'client_name',
  'client_port',
  'reverse_client_name',
  'server_address',
  'server_port',
  'helo_name',
  'sender',
  'recipient',
  'recipient_count',
  'queue_id',
  'instance',
  'size',
  'etrn_domain',
  'stress',
  'sasl_method',
  'sasl_username',
  'sasl_sender',
  'ccert_subject',
  'ccert_issuer',
  'ccert_fingerprint',
  'ccert_pubkey_fingerprint',
  'encryption_protocol',
  'encryption_cipher',
  'encryption_keysize',
  'policy_context',
]

/** Postfix 3.8 and later append these two (SMTPD_POLICY_README); 3.10 is Debian 13's. */
const POSTFIX_310_ATTRIBUTES = [...POSTFIX_37_ATTRIBUTES, 'compatibility_level', 'mail_version']

function decide(request: PolicyRequest): string {
  if (request.get('sender') === 'forged@client.test') return '553 5.7.1 text'
  switch (request.get('recipient')) {
    case 'unknown@relay.test':
      return '550 5.1.1 our text'
    case 'outage@relay.test':
      return 'DEFER_IF_PERMIT 4.3.0 our text'
    case 'busy@relay.test':
      return '450 4.7.1 text'
    default:
      return 'DUNNO'
  }
}

// Everything started here is stopped at the end, also when a later start-up throws: a test file
// that dies at top level never reaches its teardown.
const started: (() => Promise<unknown>)[] = []
const stopAll = () => Promise.all(started.splice(0).map((stop) => stop()))
eachPeerSet(t, async (t, set) => {
  t.teardown(stopAll)
  async function setUp<T>(starting: Promise<T>, stop: (it: T) => Promise<unknown>): Promise<T> {
    try {
      const it = await starting
      started.push(() => stop(it))
      return it
    } catch (e) {
      await stopAll()
      throw e
    }
  }

  /** A policy listener behind a counting proxy, which Postfix is pointed at. */
  async function startPolicyBehindProxy(service: FakePolicy, maxRequestBytes = defaultLimits.maxRequestBytes) {
    const server = createPolicyServer({
      host: '127.0.0.1',
      port: 0,
      policy: service,
      logger: silentLogger,
      limits: { ...defaultLimits, maxRequestBytes },
    })
    const { port } = await setUp(server.listen(), () => server.close(0))
    return setUp(countingProxy(port), (proxy) => proxy.close())
  }

  const policy = new FakePolicy(decide)
  const proxy = await startPolicyBehindProxy(policy)
  // Postfix's request (about 700 bytes) is too large for this one, so it closes without a reply.
  const closingPolicy = new FakePolicy(() => 'DUNNO')
  const closingProxy = await startPolicyBehindProxy(closingPolicy, 64)

  const pf = await setUp(
    startPostfix({ set,
      files: { policy_classes: 'closed@relay.test closing_policy\n' },
      mainCf: {
        relay_domains: 'relay.test',
        // The test client is an outside sender: no permit by client address comes before the policy.
        mynetworks: '',
        smtpd_authorized_xclient_hosts: '127.0.0.1',
        smtpd_restriction_classes: 'closing_policy',
        closing_policy: `check_policy_service { inet:127.0.0.1:${closingProxy.port}, timeout=10s }`,
        smtpd_recipient_restrictions: [
          'reject_unauth_destination',
          'check_recipient_access texthash:$config_directory/policy_classes',
          `check_policy_service { inet:127.0.0.1:${proxy.port}, policy_context=test, timeout=10s }`,
        ].join(', '),
      },
    }),
    (p) => p.stop(),
  )

  /** An SMTP session that has said EHLO; closed at the end of the test. */
  async function session(t: Test): Promise<SmtpSession> {
    const { session, banner } = await SmtpSession.open(pf.smtpPort)
    t.teardown(() => session.close())
    t.equal(banner.code, 220)
    t.equal((await session.ehlo()).code, 250)
    return session
  }

  const line = (r: SmtpReply) => r.lines.join('\n')

  void t.test('actions reach the SMTP client as Postfix renders them, over one reused connection', async (t) => {
    const s = await session(t)
    const asked = policy.requests.length
    const connections = proxy.accepted
    t.equal((await s.mailFrom('sender@client.test')).code, 250)
    t.equal(line(await s.rcptTo('ok@relay.test')), '250 2.1.5 Ok', 'DUNNO')
    t.equal(line(await s.rcptTo('unknown@relay.test')), '550 5.1.1 <unknown@relay.test>: Recipient address rejected: our text')
    t.equal(
      line(await s.rcptTo('outage@relay.test')),
      '450 4.3.0 <outage@relay.test>: Recipient address rejected: our text',
      'DEFER_IF_PERMIT takes the DSN from the text',
    )
    t.equal(line(await s.rcptTo('busy@relay.test')), '450 4.7.1 <busy@relay.test>: Recipient address rejected: text')
    t.equal((await s.command('RSET')).code, 250)
    t.equal((await s.mailFrom('forged@client.test')).code, 250)
    t.equal(line(await s.rcptTo('ok@relay.test')), '553 5.7.1 <ok@relay.test>: Recipient address rejected: text', 'a decision on the sender')
    await s.quit()

    const requests = policy.requests.slice(asked)
    t.same(
      requests.map((r) => r.get('recipient')),
      ['ok@relay.test', 'unknown@relay.test', 'outage@relay.test', 'busy@relay.test', 'ok@relay.test'],
      'one request per RCPT',
    )
    t.ok(proxy.accepted - connections <= 1, `${requests.length} requests over at most one new connection`)
  })

  const attributes = set.id === 'debian12' ? POSTFIX_37_ATTRIBUTES : POSTFIX_310_ATTRIBUTES
  void t.test(`the attributes Postfix ${set.id === 'debian12' ? '3.7' : '3.10'} sends at RCPT`, async (t) => {
    const s = await session(t)
    const asked = policy.requests.length
    t.equal((await s.mailFrom('sender@client.test')).code, 250)
    t.equal((await s.rcptTo('first@relay.test')).code, 250)
    t.equal((await s.rcptTo('second@relay.test')).code, 250)
    await s.quit()

    const [first, second] = policy.requests.slice(asked)
    if (first === undefined || second === undefined) return t.fail('Postfix asked twice')
    t.same([...first.keys()], attributes, 'every attribute, in order (compatibility_level and mail_version from 3.8 on)')
    if (set.id === 'debian13') t.match(first.get('mail_version'), /^3\.10\./, 'Postfix 3.10 says which it is')
    t.match(Object.fromEntries(first), {
      request: 'smtpd_access_policy',
      protocol_state: 'RCPT',
      protocol_name: 'ESMTP',
      client_address: '127.0.0.1',
      helo_name: 'client.test',
      sender: 'sender@client.test',
      recipient: 'first@relay.test',
      sasl_method: '',
      sasl_username: '',
      policy_context: 'test',
    })
    t.match(first.get('instance'), /^\S+$/, 'instance is set')
    t.equal(second.get('instance'), first.get('instance'), 'and the same for every request about one message')
    t.equal(second.get('recipient'), 'second@relay.test')
  })

  void t.test('an XCLIENT login from an authorised client arrives as sasl_username', async (t) => {
    const s = await session(t)
    const asked = policy.requests.length
    t.equal((await s.command('XCLIENT LOGIN=alice@example.org')).code, 220, 'XCLIENT restarts the session')
    t.equal((await s.ehlo()).code, 250)
    t.equal((await s.mailFrom('alice@example.org')).code, 250)
    t.equal((await s.rcptTo('ok@relay.test')).code, 250)
    await s.quit()
    const [request] = policy.requests.slice(asked)
    t.equal(request?.get('sasl_username'), 'alice@example.org')
    t.equal(request?.get('sasl_method'), 'XCLIENT')
  })

  void t.test('a close without a reply: Postfix tries twice, then defers with its default action', async (t) => {
    const s = await session(t)
    const asked = policy.requests.length
    t.equal((await s.mailFrom('sender@client.test')).code, 250)
    t.equal(
      line(await s.rcptTo('closed@relay.test')),
      '451 4.3.5 <closed@relay.test>: Recipient address rejected: Server configuration problem',
    )
    await s.quit()
    t.equal(closingProxy.accepted, 2, 'smtpd_policy_service_try_limit = 2 connections')
    t.equal(closingPolicy.requests.length, 0, 'the oversized request never reached the service')
    t.equal(policy.requests.length, asked, 'the deferral is final: the next check is not asked')
    await pf.waitForLog(new RegExp(`problem talking to server 127\\.0\\.0\\.1:${closingProxy.port}`), 10_000)
  })
})
