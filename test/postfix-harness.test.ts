// Proves the Postfix harness against Postfix's own texthash tables, standing in for mailhostd:
// routing to the right smtp-sink, 550 5.1.1 for unknown recipients, deferral and delivery after
// a flush, a clean stop, and the shipped relay snippet answering 451 4.3.0 when its directory
// is unreachable. The system Postfix (/etc/postfix) must stay untouched throughout.

import t from 'tap'
import { eachPeerSet } from './harness/peer-set.js'
import { startedPeers } from './harness/peers.js'
import { existsSync } from 'node:fs'
import { access } from 'node:fs/promises'
import { run } from './harness/process.js'
import { freePort } from './harness/ports.js'
import { isRunning, relayMainCf, startPostfix, type QueueEntry } from './harness/postfix.js'
import { startSmtpSink } from './harness/smtp-sink.js'
import { sendMail } from './harness/smtp-client.js'

/** Whether the default instance's master runs: `master -t` exits 0 when its lock is not held. */
async function systemPostfixRunning(): Promise<boolean> {
  // Debian's "No configuration" install has no main.cf: the system master cannot run then, and
  // `master -t` would fail for that reason alone.
  if (!existsSync('/etc/postfix/main.cf')) return false
  const daemonDir = (await run('postconf', ['-c', '/etc/postfix', '-h', 'daemon_directory'])).stdout.trim()
  const r = await run(`${daemonDir}/master`, ['-c', '/etc/postfix', '-t'])
  return r.code !== 0
}

const message = (subject: string) => `From: sender@client.test\nSubject: ${subject}\n\nHello.\n.leading dot\n`

const systemWasRunning = await systemPostfixRunning()

eachPeerSet(t, async (t, set) => {
  const setUp = startedPeers(t)

  const sinkA = await setUp(startSmtpSink({ set }))
  const sinkB = await setUp(startSmtpSink({ set }))
  const sinkL = await setUp(startSmtpSink({ set, lmtp: true }))
  const latePort = await freePort()

  const route = (port: number) => `smtp:[127.0.0.1]:${port}`
  const pf = await setUp(startPostfix({ set,
    files: {
      transport: [
        `alice@relay.test ${route(sinkA.port)}`,
        `bob@relay.test ${route(sinkB.port)}`,
        `carol@relay.test lmtp:inet:[127.0.0.1]:${sinkL.port}`,
        `late@relay.test ${route(latePort)}`,
        '',
      ].join('\n'),
      recipients: ['alice', 'bob', 'carol', 'late'].map((u) => `${u}@relay.test ${u}`).join('\n') + '\n',
      aliases: 'postmaster@relay.test alice@relay.test\n',
    },
    mainCf: {
      relay_domains: 'relay.test',
      transport_maps: 'texthash:$config_directory/transport',
      relay_recipient_maps: 'texthash:$config_directory/recipients',
      virtual_alias_maps: 'texthash:$config_directory/aliases',
    },
  }))

  await t.test('known recipients are accepted and each lands on its own sink', async (t) => {
    const to = ['alice@relay.test', 'bob@relay.test', 'carol@relay.test']
    const r = await sendMail({ port: pf.smtpPort, from: 'sender@client.test', to, body: message('routing') })
    t.equal(r.banner.code, 220)
    t.same(r.rcptReplies.map((x) => x.code), [250, 250, 250])
    t.equal(r.dataReply.code, 250, 'the message is queued')

    const [atA] = await sinkA.waitForMessages(1)
    const [atB] = await sinkB.waitForMessages(1)
    const [atL] = await sinkL.waitForMessages(1)
    t.same(atA?.rcptTo, ['alice@relay.test'])
    t.same(atB?.rcptTo, ['bob@relay.test'])
    t.same(atL?.rcptTo, ['carol@relay.test'])
    t.equal(atL?.proto, 'LMTP', 'an lmtp: route reaches an LMTP sink')
    t.equal(atA?.mailFrom, 'sender@client.test')
    t.match(atA?.content, /^Subject: routing$/m)
    t.match(atA?.content, /^\.leading dot$/m, 'dot-stuffing survives the round trip')
    await pf.waitForLog(/to=<bob@relay\.test>.*status=sent/)
    t.equal((await sinkA.messages()).length, 1, 'bob was not copied to sink A')
    t.equal((await sinkB.messages()).length, 1, 'alice was not copied to sink B')
  })

  await t.test('an alias is accepted without a recipient entry and delivered to its target', async (t) => {
    const r = await sendMail({ port: pf.smtpPort, from: 'sender@client.test', to: ['postmaster@relay.test'], body: message('alias') })
    t.equal(r.rcptReplies[0]?.code, 250)
    t.equal(r.dataReply.code, 250)
    const all = await sinkA.waitForMessages(2)
    t.same(all[1]?.rcptTo, ['alice@relay.test'])
    t.match(all[1]?.content, /^Subject: alias$/m)
  })

  await t.test('an unknown recipient is rejected with 550 5.1.1 and nothing is queued', async (t) => {
    const r = await sendMail({ port: pf.smtpPort, from: 'sender@client.test', to: ['nobody@relay.test'], body: message('unknown') })
    const [rcpt] = r.rcptReplies
    t.equal(rcpt?.code, 550)
    t.equal(rcpt?.enhanced, '5.1.1')
    t.match(rcpt?.text, /User unknown in relay recipient table/)
    t.equal(r.dataReply.code, 554, 'DATA without a valid recipient is refused')
  })

  await t.test('mail for an unreachable backend is deferred, then delivered after the backend starts and the queue is flushed', async (t) => {
    const r = await sendMail({ port: pf.smtpPort, from: 'sender@client.test', to: ['late@relay.test'], body: message('late') })
    t.equal(r.dataReply.code, 250)
    await pf.waitForLog(/to=<late@relay\.test>.*status=deferred/)
    const lateDeferred = (e: QueueEntry) => e.queue_name === 'deferred' && e.recipients.some((x) => x.address === 'late@relay.test')
    const queued = await pf.waitForQueue((q) => q.some(lateDeferred))
    const late = queued.find(lateDeferred)
    t.match(late?.recipients[0]?.delay_reason, /refused/i)

    const lateSink = await setUp(startSmtpSink({ set, port: latePort }))
    await pf.flush()
    const [got] = await lateSink.waitForMessages(1)
    t.same(got?.rcptTo, ['late@relay.test'])
    await pf.waitForLog(/to=<late@relay\.test>.*status=sent/)
    await pf.waitForQueue((q) => q.length === 0)
  })

  await t.test('postconf and postmap run against this instance', async (t) => {
    const conf = await pf.postconf(['-h', 'queue_directory'])
    t.equal(conf.stdout.trim(), `${pf.dir}/spool`)
    const hit = await pf.postmap(['-q', 'bob@relay.test', `texthash:${pf.configDir}/transport`])
    t.equal(hit.code, 0)
    t.equal(hit.stdout.trim(), route(sinkB.port))
    const miss = await pf.postmap(['-q', 'nobody@relay.test', `texthash:${pf.configDir}/transport`])
    t.equal(miss.code, 1)
  })

  await t.test('the relay snippet answers 451 4.3.0 while its directory is unreachable', async (t) => {
    const directoryPort = await freePort()
    const snippet = await relayMainCf({ socketmap: directoryPort })
    t.notMatch(snippet, /127\.0\.0\.1:10040/, 'every socketmap port was rewritten')
    const relay = await setUp(startPostfix({ set, snippet }))
    const conf = await relay.postconf(['-h', 'transport_maps', 'relay_recipient_maps', 'virtual_alias_maps', 'virtual_alias_domains', 'relay_domains'])
    t.same(conf.stdout.split('\n').slice(0, 5), [
      `socketmap:inet:127.0.0.1:${directoryPort}:transport`,
      `socketmap:inet:127.0.0.1:${directoryPort}:recipient`,
      `socketmap:inet:127.0.0.1:${directoryPort}:alias`,
      '',
      'example.org, example.net, example.com',
    ])
    t.equal(conf.stderr, '', 'postconf has no warnings about the snippet')

    const r = await sendMail({ port: relay.smtpPort, from: 'sender@client.test', to: ['alice@example.org'], body: message('outage') })
    t.equal(r.rcptReplies[0]?.code, 451)
    t.equal(r.rcptReplies[0]?.enhanced, '4.3.0')
    t.match(r.rcptReplies[0]?.text, /Temporary lookup failure/)
    t.same(await relay.queue(), [], 'nothing was accepted, so nothing can bounce')
  })

  await t.test('stop() leaves no process of the instance and removes its directory', async (t) => {
    const pids = await pf.processes()
    t.ok(pids.includes(pf.pid), 'the master is among the instance processes')
    t.ok(pids.length > 1, 'the master runs daemons')
    await pf.stop()
    for (const pid of pids) t.notOk(await isRunning(pid), `pid ${pid} is gone`)
    await t.rejects(access(pf.dir), 'the temp dir is removed')
    await pf.stop()
  })

  await t.test('the system Postfix instance was not started', async (t) => {
    t.equal(await systemPostfixRunning(), systemWasRunning)
    t.notOk(systemWasRunning, 'the system instance is not running on this test machine')
  })
})
