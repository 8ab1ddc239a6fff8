// The policy delegation listener with an in-memory PolicyService: connection reuse, pipelining,
// bad input (closed without a reply, so Postfix retries), timeouts and graceful close.

import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { INTERNAL_DEFER } from '../../src/policy/replies.js'
import { Client } from './client.js'
import { until } from './flavors.js'
import { policyRequest, rcpt, readAction, startPolicy } from './policy-client.js'

/** Generous bound for "answered promptly" while another connection misbehaves. */
const PROMPT_MS = 2000

void t.test('one connection serves many requests in order, each with its attributes as sent', async (t) => {
  const { server, port, policy } = await startPolicy()
  t.teardown(() => server.close(0))
  const c = await Client.connect(port)
  t.teardown(() => c.destroy())

  c.write(
    policyRequest([
      ['request', 'smtpd_access_policy'],
      ['protocol_state', 'RCPT'],
      ['sender', 'ü@exämple.org'],
      ['recipient', 'first@x'],
      ['recipient', 'alice@example.org'],
      ['sasl_username', ''],
      ['policy_context', 'a=b'],
      ['attribute_from_the_future', 'kept'],
    ]),
  )
  t.equal(await readAction(c), 'OK alice@example.org', 'the last duplicate wins')
  c.write(rcpt('nobody@example.org'))
  t.equal(await readAction(c), '550 5.1.1 unknown nobody@example.org')
  c.write(Buffer.concat([Buffer.from('recipient=bad'), Buffer.from([0xff, 0xfe]), Buffer.from('@x\n\n')]))
  t.equal(await readAction(c), 'DUNNO no recipient', 'invalid UTF-8 reaches the service as null')

  t.same(
    [...policy.requests[0]!],
    [
      ['request', 'smtpd_access_policy'],
      ['protocol_state', 'RCPT'],
      ['sender', 'ü@exämple.org'],
      ['recipient', 'alice@example.org'],
      ['sasl_username', ''],
      ['policy_context', 'a=b'],
      ['attribute_from_the_future', 'kept'],
    ],
  )
  t.equal(policy.requests[2]!.get('recipient'), null)
  t.equal(server.connections, 1)
  t.notOk(await c.closesWithin(300), 'the connection stays open for the next request')
})

void t.test('a pipelined burst is answered in order, one reply each', async (t) => {
  const { server, port } = await startPolicy()
  t.teardown(() => server.close(0))
  const c = await Client.connect(port)
  t.teardown(() => c.destroy())
  const recipients = Array.from({ length: 200 }, (_, i) => (i % 7 === 3 ? `no${i}@x` : `sleep${i}@x`))
  c.write(Buffer.concat(recipients.map(rcpt)))
  const actions: string[] = []
  for (let i = 0; i < recipients.length; i++) actions.push(await readAction(c))
  t.same(
    actions,
    recipients.map((r) => (r.startsWith('no') ? `550 5.1.1 unknown ${r}` : `OK ${r}`)),
  )
  t.equal(c.buffered.length, 0, 'no extra bytes')
})

void t.test('the last request before the client shuts down its side is still answered', async (t) => {
  const { server, port } = await startPolicy()
  t.teardown(() => server.close(0))
  const c = await Client.connect(port)
  t.teardown(() => c.destroy())
  c.socket.end(rcpt('alice@x'))
  t.equal(await readAction(c), 'OK alice@x')
  t.ok(await c.closesWithin(PROMPT_MS), 'then the server closes')
})

const badInputs: [string, () => Buffer][] = [
  ['garbage', () => Buffer.from('GET / HTTP/1.1\r\nHost: policy\r\n\r\n')],
  ['a line without =', () => Buffer.from('request=smtpd_access_policy\nrecipient\n\n')],
  ['an empty name', () => Buffer.from('=alice@x\n\n')],
  ['a NUL', () => Buffer.from('recipient=alice\0@x\n\n')],
  ['a 1 MiB request', () => Buffer.from(`recipient=${'a'.repeat(1 << 20)}\n\n`)],
  ['1 MiB without a line end', () => Buffer.alloc(1 << 20, 0x61)],
]
for (const [what, bytes] of badInputs) {
  void t.test(`${what}: the connection is closed without a reply, others are not delayed`, async (t) => {
    const { server, port, policy } = await startPolicy()
    t.teardown(() => server.close(0))
    const good = await Client.connect(port)
    const bad = await Client.connect(port)
    t.teardown(() => (good.destroy(), bad.destroy()))

    bad.write(bytes())
    good.write(rcpt('alice@x'))
    t.equal(await readAction(good, PROMPT_MS), 'OK alice@x')
    t.ok(await bad.closesWithin(PROMPT_MS), 'bad connection closed')
    t.equal(bad.buffered.length, 0, 'not a byte sent to it')
    good.write(rcpt('bob@x'))
    t.equal(await readAction(good, PROMPT_MS), 'OK bob@x')
    t.equal(policy.requests.length, 2, 'the bad request never reached the service')
  })
}

void t.test('requests before a bad one on the same connection are answered first', async (t) => {
  const { server, port } = await startPolicy()
  t.teardown(() => server.close(0))
  const c = await Client.connect(port)
  t.teardown(() => c.destroy())
  c.write(Buffer.concat([rcpt('sleep1@x'), rcpt('no@x'), Buffer.from('junk\n\n'), rcpt('alice@x')]))
  t.equal(await readAction(c), 'OK sleep1@x')
  t.equal(await readAction(c), '550 5.1.1 unknown no@x')
  t.ok(await c.closesWithin(PROMPT_MS))
  t.equal(c.buffered.length, 0, 'nothing after the bad request')
})

void t.test('maxRequestBytes is exact on the wire', async (t) => {
  const request = rcpt('alice@x')
  const { server, port } = await startPolicy({ maxRequestBytes: request.length })
  t.teardown(() => server.close(0))
  const fits = await Client.connect(port)
  const over = await Client.connect(port)
  t.teardown(() => (fits.destroy(), over.destroy()))
  fits.write(request)
  t.equal(await readAction(fits), 'OK alice@x')
  over.write(rcpt('alice@xy'))
  t.ok(await over.closesWithin(PROMPT_MS), 'one byte more: closed')
  t.equal(over.buffered.length, 0, 'without a reply')
})

void t.test('a stalled half request does not delay other connections, and times out', async (t) => {
  const { server, port } = await startPolicy({ requestTimeoutMs: 300 })
  t.teardown(() => server.close(0))
  const stalled = await Client.connect(port)
  const good = await Client.connect(port)
  t.teardown(() => (good.destroy(), stalled.destroy()))

  stalled.write('request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=ali')
  for (const r of ['a@x', 'b@x', 'c@x']) {
    good.write(rcpt(r))
    t.equal(await readAction(good, PROMPT_MS), `OK ${r}`)
  }
  t.ok(await stalled.closesWithin(5000), 'stalled connection closed by the request timeout')
  t.equal(stalled.buffered.length, 0, 'without a reply')
  good.write(rcpt('d@x'))
  t.equal(await readAction(good, PROMPT_MS), 'OK d@x', 'the good connection outlives the timeout')
})

void t.test('a slow decision on one connection does not delay another', async (t) => {
  const { server, port, policy } = await startPolicy()
  t.teardown(() => server.close(0))
  const slow = await Client.connect(port)
  const fast = await Client.connect(port)
  t.teardown(() => (slow.destroy(), fast.destroy()))
  policy.hold('slow@x')
  slow.write(rcpt('slow@x'))
  await until(() => policy.waiting === 1, 5000, 'the slow decision to start')
  fast.write(rcpt('fast@x'))
  t.equal(await readAction(fast, PROMPT_MS), 'OK fast@x')
  t.equal(slow.buffered.length, 0, 'the slow one still waits')
  policy.release()
  t.equal(await readAction(slow), 'OK slow@x')
})

void t.test('a rejecting service is answered INTERNAL_DEFER, logged, and the connection stays usable', async (t) => {
  const { server, port, logLines } = await startPolicy()
  t.teardown(() => server.close(0))
  const c = await Client.connect(port)
  t.teardown(() => c.destroy())
  c.write(policyRequest({ request: 'smtpd_access_policy', protocol_state: 'RCPT', instance: '1a.2b.3c.0', recipient: 'boom@x' }))
  t.equal(await readAction(c), INTERNAL_DEFER)
  c.write(rcpt('alice@x'))
  t.equal(await readAction(c), 'OK alice@x')
  const errors = logLines().filter((l) => l.level === 'error')
  t.equal(errors.length, 1)
  t.match(errors[0], { listener: 'policy', msg: 'policy decision failed', err: 'bug in the engine', state: 'RCPT', instance: '1a.2b.3c.0' })
})

void t.test('idle connections are closed after idleTimeoutMs, however many requests they served', async (t) => {
  const { server, port } = await startPolicy({ idleTimeoutMs: 200 })
  t.teardown(() => server.close(0))
  const used = await Client.connect(port)
  const silent = await Client.connect(port)
  t.teardown(() => (used.destroy(), silent.destroy()))
  for (const r of ['a@x', 'b@x', 'c@x']) {
    used.write(rcpt(r))
    t.equal(await readAction(used), `OK ${r}`)
  }
  t.ok(await silent.closesWithin(5000), 'a connection that never sent anything')
  t.ok(await used.closesWithin(5000), 'a connection idle after its requests')
  await until(() => server.connections === 0, 5000, 'connections to be released')
})

void t.test('a decision in progress is not idleness', async (t) => {
  const { server, port, policy } = await startPolicy({ idleTimeoutMs: 100 })
  t.teardown(() => server.close(0))
  const c = await Client.connect(port)
  t.teardown(() => c.destroy())
  policy.hold('slow@x')
  c.write(rcpt('slow@x'))
  await until(() => policy.waiting === 1, 5000, 'the decision to start')
  await sleep(400)
  policy.release()
  t.equal(await readAction(c), 'OK slow@x')
})

void t.test('close() lets an in-flight decision finish, closes idle connections and refuses new ones', async (t) => {
  const { server, port, policy } = await startPolicy()
  const busy = await Client.connect(port)
  const idle = await Client.connect(port)
  t.teardown(() => (busy.destroy(), idle.destroy()))
  idle.write(rcpt('alice@x'))
  t.equal(await readAction(idle), 'OK alice@x')

  policy.hold('slow@x')
  busy.write(rcpt('slow@x'))
  await until(() => policy.waiting === 1, 5000, 'the slow decision to start')
  let closed = false
  const closing = server.close(10_000).then(() => (closed = true))

  t.ok(await idle.closesWithin(PROMPT_MS), 'idle connection closed at once')
  await t.rejects(Client.connect(port), { code: 'ECONNREFUSED' }, 'no new connections')
  t.notOk(closed, 'close() waits for the decision in flight')
  policy.release()
  t.equal(await readAction(busy), 'OK slow@x', 'the in-flight decision is answered')
  t.ok(await busy.closesWithin(PROMPT_MS), 'then that connection closes too')
  await closing
  t.equal(server.connections, 0)
})
