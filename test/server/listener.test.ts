// Requests and bad input on both listeners, with an in-memory LookupService.

import t from 'tap'
import { Client } from './client.js'
import { flavors, startFlavor, until } from './flavors.js'

/** Generous bound for "answered promptly" while another connection misbehaves. */
const PROMPT_MS = 2000

for (const f of flavors) {
  void t.test(`${f.name}: answers, with the map, key and protocol the service expects`, async (t) => {
    const { server, port, lookup } = await startFlavor(f)
    t.teardown(() => server.close(0))
    const c = await Client.connect(port)
    t.teardown(() => c.destroy())

    c.write(f.request('alice@example.org'))
    t.equal(await f.reply(c), f.found('route-for alice@example.org'))
    c.write(f.request('nobody@example.org'))
    t.equal(await f.reply(c), f.notFound)
    c.write(f.request('temp@example.org'))
    t.equal(await f.reply(c), f.temp('directory down'))
    c.write(f.request('üser@exämple.org'))
    t.equal(await f.reply(c), f.found('route-for üser@exämple.org'))
    t.same(lookup.calls[0], { map: 'transport', key: 'alice@example.org', protocol: f.name })
    t.equal(lookup.calls[3]?.key, 'üser@exämple.org')
    t.equal(server.connections, 1)
  })

  void t.test(`${f.name}: a key that is not UTF-8 reaches the service as null`, async (t) => {
    const { server, port, lookup } = await startFlavor(f)
    t.teardown(() => server.close(0))
    const c = await Client.connect(port)
    t.teardown(() => c.destroy())
    c.write(f.request(Buffer.from([0x61, 0xff, 0xfe, 0x40, 0x78])))
    t.equal(await f.reply(c), f.notFound)
    t.same(lookup.calls, [{ map: 'transport', key: null, protocol: f.name }])
  })

  void t.test(`${f.name}: a rejecting service becomes a temporary failure and the connection stays usable`, async (t) => {
    const { server, port, logLines } = await startFlavor(f)
    t.teardown(() => server.close(0))
    const c = await Client.connect(port)
    t.teardown(() => c.destroy())
    c.write(f.request('boom@example.org'))
    t.equal(await f.reply(c), f.temp('internal error'))
    c.write(f.request('alice@example.org'))
    t.equal(await f.reply(c), f.found('route-for alice@example.org'))
    t.ok(logLines().some((l) => l.level === 'error' && l.msg === 'lookup failed' && l.err === 'bug in the service'))
  })

  void t.test(`${f.name}: pipelined requests are answered in order, one reply each`, async (t) => {
    const { server, port } = await startFlavor(f)
    t.teardown(() => server.close(0))
    const c = await Client.connect(port)
    t.teardown(() => c.destroy())
    const keys = Array.from({ length: 200 }, (_, i) => (i % 7 === 3 ? `no${i}@x` : `sleep${i}@x`))
    c.write(Buffer.concat(keys.map((k) => f.request(k))))
    const replies: string[] = []
    for (let i = 0; i < keys.length; i++) replies.push(await f.reply(c))
    t.same(
      replies,
      keys.map((k) => (k.startsWith('no') ? f.notFound : f.found(`route-for ${k}`))),
    )
    t.equal(c.buffered.length, 0, 'no extra bytes')
  })

  void t.test(`${f.name}: the last request before the client's FIN is still answered`, async (t) => {
    const { server, port } = await startFlavor(f)
    t.teardown(() => server.close(0))
    const c = await Client.connect(port)
    t.teardown(() => c.destroy())
    c.socket.end(f.request('alice@example.org'))
    t.equal(await f.reply(c), f.found('route-for alice@example.org'))
    t.ok(await c.closesWithin(PROMPT_MS), 'server closes after answering')
  })

  const badInputs: [string, () => Buffer, string][] = [
    ['garbage', () => f.garbage, f.malformed],
    ['a 1 MiB request', () => f.huge, f.tooLarge],
  ]
  for (const [what, bytes, expected] of badInputs) {
    void t.test(`${f.name}: ${what} gets an error reply and a close, and other connections are not delayed`, async (t) => {
      const { server, port, lookup } = await startFlavor(f)
      t.teardown(() => server.close(0))
      const good = await Client.connect(port)
      const bad = await Client.connect(port)
      t.teardown(() => (good.destroy(), bad.destroy()))

      bad.write(bytes())
      good.write(f.request('alice@example.org'))
      t.equal(await f.reply(good, PROMPT_MS), f.found('route-for alice@example.org'))
      t.equal(await f.reply(bad, PROMPT_MS), expected)
      t.ok(await bad.closesWithin(PROMPT_MS), 'bad connection closed')
      good.write(f.request('bob@example.org'))
      t.equal(await f.reply(good, PROMPT_MS), f.found('route-for bob@example.org'))
      t.equal(lookup.calls.length, 2, 'the bad request never reached the service')
    })
  }

  void t.test(`${f.name}: requests before garbage on the same connection are answered first`, async (t) => {
    const { server, port } = await startFlavor(f)
    t.teardown(() => server.close(0))
    const c = await Client.connect(port)
    t.teardown(() => c.destroy())
    c.write(Buffer.concat([f.request('sleep1@x'), f.request('no@x'), f.garbage, f.request('alice@x')]))
    t.equal(await f.reply(c), f.found('route-for sleep1@x'))
    t.equal(await f.reply(c), f.notFound)
    t.equal(await f.reply(c), f.malformed)
    t.ok(await c.closesWithin(PROMPT_MS))
  })

  void t.test(`${f.name}: a stalled half request does not delay other connections, and times out`, async (t) => {
    const { server, port } = await startFlavor(f, { requestTimeoutMs: 300 })
    t.teardown(() => server.close(0))
    const stalled = await Client.connect(port)
    const good = await Client.connect(port)
    t.teardown(() => (good.destroy(), stalled.destroy()))

    stalled.write(f.halfRequest)
    for (const key of ['a@x', 'b@x', 'c@x']) {
      good.write(f.request(key))
      t.equal(await f.reply(good, PROMPT_MS), f.found(`route-for ${key}`))
    }
    t.ok(await stalled.closesWithin(5000), 'stalled connection closed by the request timeout')
    t.equal(stalled.buffered.length, 0, 'without a reply')
    good.write(f.request('d@x'))
    t.equal(await f.reply(good, PROMPT_MS), f.found('route-for d@x'), 'the good connection outlives the timeout')
  })

  void t.test(`${f.name}: a slow lookup on one connection does not delay another`, async (t) => {
    const { server, port, lookup } = await startFlavor(f)
    t.teardown(() => server.close(0))
    const slow = await Client.connect(port)
    const fast = await Client.connect(port)
    t.teardown(() => (slow.destroy(), fast.destroy()))

    lookup.hold('slow@x')
    slow.write(f.request('slow@x'))
    await until(() => lookup.waiting === 1, 5000, 'the slow lookup to start')
    fast.write(f.request('fast@x'))
    t.equal(await f.reply(fast, PROMPT_MS), f.found('route-for fast@x'))
    t.equal(slow.buffered.length, 0, 'slow one still waiting')
    lookup.release()
    t.equal(await f.reply(slow), f.found('route-for slow@x'))
  })

  for (const how of ['resets', 'closes'] as const) {
    void t.test(`${f.name}: a peer that ${how} during a lookup does not hurt the server`, async (t) => {
      const { server, port, lookup, logLines } = await startFlavor(f)
      t.teardown(() => server.close(0))
      const gone = await Client.connect(port)
      lookup.hold('slow@x')
      gone.write(f.request('slow@x'))
      await until(() => lookup.waiting === 1, 5000, 'the lookup to start')
      if (how === 'resets') gone.socket.resetAndDestroy()
      else gone.destroy()
      await gone.closed
      // The reply is written to a socket whose peer is gone (EPIPE/ECONNRESET, or nothing at all).
      lookup.release()
      await until(() => server.connections === 0, 5000, 'the dead connection to go away')

      const c = await Client.connect(port)
      t.teardown(() => c.destroy())
      c.write(f.request('alice@x'))
      t.equal(await f.reply(c), f.found('route-for alice@x'))
      t.same(logLines().filter((l) => ['warn', 'error', 'fatal'].includes(String(l.level))), [], 'nothing above debug about it')
    })
  }
}
