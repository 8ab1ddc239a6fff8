// Acceptance for rate limits on the submission front-end: a real Postfix running the submission
// fragments (relay-main.cf + submission-main.cf + submission-master.cf, rewritten only for ports,
// paths and the chroot column), mailhostd built from dist/ on the demo SQL directory, whose
// "submission" rule set allows 3 messages per 10 s per login and per client address.
// Logins and client addresses come from XCLIENT (LOGIN=, ADDR=) on the nginx-proxy service.
// - messages 1..3 are accepted, the 4th inside the window gets 450 4.7.1 with our text, and one
//   sent after the window passes; a message with several recipients counts once;
// - the limit is per key: another client address, or another login, is not held back; the
//   login's key is its account, so ALICE@ and alice+1@ are held back with alice.
// The waits are "at least the window", never an upper bound on how fast anything runs; the
// window is long enough that four quick messages always fall inside it.

import t, { type Test } from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { rateLimited } from '../../src/policy/replies.js'
import { freePorts } from '../harness/ports.js'
import { startPostfix, submissionCf } from '../harness/postfix.js'
import { ROOT, startMailhostd } from '../harness/mailhostd.js'
import { sendMail, type SendMailResult } from '../harness/smtp-client.js'
import { startSmtpSink } from '../harness/smtp-sink.js'
import { demoClusterConfig } from './demo-table.js'

const LIMIT = 3
const WINDOW = '10s'
const WINDOW_MS = 10_000

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
/** The reply text Postfix builds around a policy action at RCPT. */
const rejected = (rcpt: string, action: string) => `<${rcpt}>: Recipient address rejected: ${action.replace(/^\d{3} \d\.\d{1,3}\.\d{1,3} /, '')}`

eachPeerSet(t, async (t, set) => {
  t.test('submission rate limits by login and by client address', async (t) => {
    const mx1 = await startSmtpSink({ set })
    t.teardown(() => mx1.stop())
    const mx2 = await startSmtpSink({ set })
    t.teardown(() => mx2.stop())

    const m = await startMailhostd(
      {
        domains: demoClusterConfig().domains,
        backends: [
          { id: 'mx1', mailHosts: ['mx1.example.org'], address: '127.0.0.1', route: 'smtp', ports: { smtp: mx1.port } },
          { id: 'mx2', mailHosts: ['mx2.example.org'], address: '127.0.0.1', route: 'smtp', ports: { smtp: mx2.port } },
        ],
        directory: { type: 'sql' },
        policy: {
          ruleSets: {
            default: {},
            mx: {},
            submission: {
              rateLimits: [
                { by: 'sasl_username', messages: LIMIT, window: WINDOW },
                { by: 'client_address', messages: LIMIT, window: WINDOW },
              ],
            },
          },
        },
      },
      { args: ['--seed-sql', `${ROOT}/fixtures/demo/directory.sql`] },
    )
    t.teardown(() => m.stop())

    const [submissionPort, proxyPort] = (await freePorts(2)) as [number, number]
    const cf = await submissionCf({ socketmap: m.ports.socketmap, policy: m.ports.policy, submission: submissionPort, proxy: proxyPort })
    const postfix = await startPostfix({ set, snippet: cf.mainCf, masterCf: cf.masterCf })
    t.teardown(() => postfix.stop())

    let sent = 0
    /** One message from `login` (as its own address) and client `addr`, through the nginx-proxy service. */
    const submit = (login: string, addr: string, to: string[] = ['bob@example.org']): Promise<SendMailResult> =>
      sendMail({
        port: proxyPort,
        from: login,
        to,
        body: `Subject: message ${++sent} from ${login} at ${addr}\r\n\r\nhello\r\n`,
        xclient: { LOGIN: login, ADDR: addr },
      })
    const accepted = (t: Test, r: SendMailResult, what: string) => {
      t.same(r.rcptReplies.map((x) => x.code), r.rcptReplies.map(() => 250), `${what}: every recipient accepted`)
      t.equal(r.dataReply.code, 250, `${what}: queued`)
    }

    await t.test('by client address', async (t) => {
      const client = '192.0.2.10'
      // Message 1 has three recipients: it must count once, or message 2 would already be refused.
      accepted(t, await submit('alice@example.org', client, ['bob@example.org', 'alice@example.org', 'postmaster@example.org']), 'message 1')
      accepted(t, await submit('bob@example.org', client), 'message 2')
      accepted(t, await submit('alice@example.org', client), 'message 3')

      const over = await submit('bob@example.org', client, ['alice@example.org', 'bob@example.org'])
      t.same(over.rcptReplies.map((x) => x.code), [450, 450], 'message 4 inside the window: every RCPT deferred')
      t.equal(over.rcptReplies[0]?.enhanced, '4.7.1')
      t.equal(over.rcptReplies[0]?.text, rejected('alice@example.org', rateLimited('client', client, LIMIT, WINDOW)))
      t.not(over.dataReply.code, 250, 'message 4 not queued')

      accepted(t, await submit('bob@example.org', '192.0.2.11'), 'another client address at the same time')

      await sleep(WINDOW_MS + 1000)
      accepted(t, await submit('bob@example.org', client), 'the same client after the window')
    })

    await t.test('by login', async (t) => {
      // The previous test's messages from alice are older than the window by now.
      const login = 'alice@example.org'
      accepted(t, await submit(login, '192.0.2.21', ['bob@example.org', 'alice.liddell@example.org']), 'message 1')
      accepted(t, await submit(login, '192.0.2.22'), 'message 2')
      accepted(t, await submit(login, '192.0.2.23'), 'message 3')

      const over = await submit(login, '192.0.2.24')
      t.equal(over.rcptReplies[0]?.code, 450, 'message 4 inside the window, from a fresh client address: deferred')
      t.equal(over.rcptReplies[0]?.enhanced, '4.7.1')
      t.equal(over.rcptReplies[0]?.text, rejected('bob@example.org', rateLimited('login', login, LIMIT, WINDOW)))
      t.not(over.dataReply.code, 250)

      // The limit is alice's account, whichever of her names the client logged in with.
      for (const [variant, addr] of [['ALICE@example.org', '192.0.2.27'], ['alice+1@example.org', '192.0.2.28']] as const) {
        const as = await submit(variant, addr)
        t.equal(as.rcptReplies[0]?.code, 450, `${variant} inside the window: deferred`)
        t.equal(as.rcptReplies[0]?.text, rejected('bob@example.org', rateLimited('login', login, LIMIT, WINDOW)), `${variant}: alice's limit`)
        t.not(as.dataReply.code, 250)
      }

      accepted(t, await submit('bob@example.org', '192.0.2.25'), 'another login at the same time')

      await sleep(WINDOW_MS + 1000)
      accepted(t, await submit(login, '192.0.2.26'), 'the same login after the window')
    })

    await t.test('accepted messages are delivered, refused ones are not', async (t) => {
      // Accepted: 5 + 5 messages; bob is a recipient of each, alice of two.
      const atMx2 = await mx2.waitForMessages(10, 30_000)
      t.equal(atMx2.length, 10)
      await postfix.waitForQueue((q) => q.length === 0, 30_000)
      const subjects = [...(await mx1.messages()), ...atMx2].map((msg) => /^Subject: (.*)$/m.exec(msg.content)?.[1])
      t.notOk(subjects.includes('message 4 from bob@example.org at 192.0.2.10'), 'the deferred message never left')
      t.notOk(subjects.includes('message 10 from alice@example.org at 192.0.2.24'))
      t.notMatch(await postfix.log(), /status=bounced/, 'nothing bounced')
    })
  })
})
