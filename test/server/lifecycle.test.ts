// Connection lifecycle on both listeners: timeouts, the connection limit, graceful close and
// backpressure against a pipelining client.

import t from 'tap'
import { once } from 'node:events'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { silentLogger } from '../../src/log.js'
import { found } from '../../src/resolve/answer.js'
import { Client } from './client.js'
import { FakeLookup } from './fake-lookup.js'
import { flavors, startFlavor, until } from './flavors.js'

for (const f of flavors) {
  void t.test(`${f.name}: idle connections are closed after idleTimeoutMs`, async (t) => {
    const { server, port } = await startFlavor(f, { idleTimeoutMs: 200 })
    t.teardown(() => server.close(0))
    const used = await Client.connect(port)
    const silent = await Client.connect(port)
    t.teardown(() => (used.destroy(), silent.destroy()))
    used.write(f.request('alice@x'))
    t.equal(await f.reply(used), f.found('route-for alice@x'))
    t.ok(await silent.closesWithin(5000), 'a connection that never sent anything')
    t.ok(await used.closesWithin(5000), 'a connection idle after a request')
    await until(() => server.connections === 0, 5000, 'connections to be released')
  })

  void t.test(`${f.name}: a request in progress is not an idle connection`, async (t) => {
    const { server, port, lookup } = await startFlavor(f, { idleTimeoutMs: 100 })
    t.teardown(() => server.close(0))
    const c = await Client.connect(port)
    t.teardown(() => c.destroy())
    lookup.hold('slow@x')
    c.write(f.request('slow@x'))
    await sleep(400)
    lookup.release()
    t.equal(await f.reply(c), f.found('route-for slow@x'))
    t.ok(await c.closesWithin(5000), 'idle again afterwards, then closed')
  })

  void t.test(`${f.name}: trickling a request byte by byte does not extend requestTimeoutMs`, async (t) => {
    const { server, port } = await startFlavor(f, { requestTimeoutMs: 300, idleTimeoutMs: 60_000 })
    t.teardown(() => server.close(0))
    const c = await Client.connect(port)
    t.teardown(() => c.destroy())
    const bytes = f.request('a-rather-long-key-sent-very-slowly@example.org')
    const started = Date.now()
    for (const b of bytes.subarray(0, -1)) {
      if (c.socket.destroyed || c.socket.readableEnded) break
      c.write(Buffer.from([b]))
      await sleep(50)
    }
    t.ok(await c.closesWithin(5000), 'closed')
    t.ok(Date.now() - started < (bytes.length - 1) * 50, 'before the request could complete')
    t.equal(c.buffered.length, 0, 'without a reply')
  })

  void t.test(`${f.name}: the request timeout restarts for each request`, async (t) => {
    const { server, port } = await startFlavor(f, { requestTimeoutMs: 1500 })
    t.teardown(() => server.close(0))
    const c = await Client.connect(port)
    t.teardown(() => c.destroy())
    // Each request is split over 900 ms; two of them span longer than one timeout.
    for (const key of ['a@x', 'b@x']) {
      const req = f.request(key)
      c.write(req.subarray(0, 3))
      await sleep(900)
      c.write(req.subarray(3))
      t.equal(await f.reply(c), f.found(`route-for ${key}`))
    }
  })

  void t.test(`${f.name}: connections beyond maxConnections are closed at once, with one warning`, async (t) => {
    const { server, port, logLines } = await startFlavor(f, { maxConnections: 2 })
    t.teardown(() => server.close(0))
    const a = await Client.connect(port)
    const b = await Client.connect(port)
    t.teardown(() => (a.destroy(), b.destroy()))
    for (const c of [a, b]) {
      c.write(f.request('alice@x'))
      t.equal(await f.reply(c), f.found('route-for alice@x'))
    }
    for (let i = 0; i < 3; i++) {
      const extra = await Client.connect(port)
      extra.write(f.request('alice@x'))
      t.ok(await extra.closesWithin(2000), `extra connection ${i} closed`)
      t.equal(extra.buffered.length, 0, 'without an answer')
    }
    const warnings = logLines().filter((l) => l.level === 'warn')
    t.equal(warnings.length, 1, 'one warning for three refused connections')
    t.match(warnings[0], { msg: /connection limit/, maxConnections: 2 })
    t.equal(server.connections, 2)

    a.destroy()
    await until(() => server.connections === 1, 5000, 'a slot to free up')
    const d = await Client.connect(port)
    t.teardown(() => d.destroy())
    d.write(f.request('bob@x'))
    t.equal(await f.reply(d), f.found('route-for bob@x'), 'a freed slot is usable')
    b.write(f.request('carol@x'))
    t.equal(await f.reply(b), f.found('route-for carol@x'), 'existing connections kept working')
  })

  void t.test(`${f.name}: a connection without a complete first request within firstRequestTimeoutMs is closed`, async (t) => {
    const { server, port } = await startFlavor(f, { firstRequestTimeoutMs: 300, idleTimeoutMs: 60_000 })
    t.teardown(() => server.close(0))
    const used = await Client.connect(port)
    const silent = await Client.connect(port)
    const half = await Client.connect(port)
    t.teardown(() => (used.destroy(), silent.destroy(), half.destroy()))
    used.write(f.request('alice@x'))
    t.equal(await f.reply(used), f.found('route-for alice@x'))
    half.write(f.halfRequest)
    t.ok(await silent.closesWithin(5000), 'a connection that never sent anything')
    t.ok(await half.closesWithin(5000), 'a connection whose first request never completed')
    t.equal(silent.buffered.length + half.buffered.length, 0, 'without a reply')
    // The timer is for the first request only: the used connection outlives it and still answers.
    used.write(f.request('bob@x'))
    t.equal(await f.reply(used), f.found('route-for bob@x'), 'a connection that completed a request stays')
  })

  void t.test(`${f.name}: one client address gets at most maxConnectionsPerClient`, async (t) => {
    const { server, port } = await startFlavor(f, { maxConnectionsPerClient: 2 })
    t.teardown(() => server.close(0))
    const mine = [await Client.connect(port), await Client.connect(port)]
    const extra = await Client.connect(port)
    const other = await Client.connect(port, '127.0.0.1', '127.0.0.2')
    t.teardown(() => [...mine, extra, other].forEach((c) => c.destroy()))
    t.ok(await extra.closesWithin(2000), 'a third connection from 127.0.0.1 is closed at once')
    other.write(f.request('alice@x'))
    t.equal(await f.reply(other), f.found('route-for alice@x'), 'another address still gets in')
    for (const c of mine) {
      c.write(f.request('carol@x'))
      t.equal(await f.reply(c), f.found('route-for carol@x'), 'the first two keep working')
    }
  })

  void t.test(`${f.name}: at maxConnections the oldest connection without a request makes room`, async (t) => {
    const { server, port } = await startFlavor(f, { maxConnections: 3 })
    t.teardown(() => server.close(0))
    const served = await Client.connect(port)
    served.write(f.request('alice@x'))
    t.equal(await f.reply(served), f.found('route-for alice@x'))
    const oldest = await Client.connect(port)
    const newer = await Client.connect(port)
    await until(() => server.connections === 3, 5000, 'three connections')
    const real = await Client.connect(port)
    t.teardown(() => [served, oldest, newer, real].forEach((c) => c.destroy()))
    real.write(f.request('bob@x'))
    t.equal(await f.reply(real), f.found('route-for bob@x'), 'the new connection is served')
    t.ok(await oldest.closesWithin(2000), 'the oldest silent connection made room')
    t.equal(server.connections, 3, 'still within the cap')
    newer.write(f.request('carol@x'))
    t.equal(await f.reply(newer), f.found('route-for carol@x'), 'the newer silent one was kept')
    served.write(f.request('dave@x'))
    t.equal(await f.reply(served), f.found('route-for dave@x'), 'a connection that completed a request is never the one to go')
  })

  void t.test(`${f.name}: close() lets an in-flight request finish and closes idle connections`, async (t) => {
    const { server, port, lookup } = await startFlavor(f)
    const busy = await Client.connect(port)
    const idle = await Client.connect(port)
    t.teardown(() => (busy.destroy(), idle.destroy()))
    idle.write(f.request('alice@x'))
    t.equal(await f.reply(idle), f.found('route-for alice@x'))

    lookup.hold('slow@x')
    busy.write(f.request('slow@x'))
    await until(() => lookup.waiting === 1, 5000, 'the slow lookup to start')
    let closed = false
    const closing = server.close(10_000).then(() => (closed = true))

    t.ok(await idle.closesWithin(2000), 'idle connection closed at once')
    await t.rejects(Client.connect(port), { code: 'ECONNREFUSED' }, 'no new connections')
    t.notOk(closed, 'close() waits for the request in flight')
    lookup.release()
    t.equal(await f.reply(busy), f.found('route-for slow@x'), 'the in-flight request is answered')
    t.ok(await busy.closesWithin(2000), 'then its connection is closed')
    await closing
    t.equal(server.connections, 0)
  })

  void t.test(`${f.name}: close() destroys what is left after the grace period`, async (t) => {
    const { server, port, lookup } = await startFlavor(f)
    const stuck = await Client.connect(port)
    t.teardown(() => stuck.destroy())
    lookup.hold('stuck@x')
    t.teardown(() => lookup.release())
    stuck.write(f.request('stuck@x'))
    await until(() => lookup.waiting === 1, 5000, 'the lookup to start')
    const started = Date.now()
    await server.close(300)
    t.ok(Date.now() - started < 5000, 'close() returned although the lookup never finished')
    t.ok(await stuck.closesWithin(2000), 'the stuck connection was destroyed')
    t.equal(server.connections, 0)
  })

  void t.test(`${f.name}: a client that stops reading replies is disconnected`, async (t) => {
    const { server, port } = await startFlavor(f, { requestTimeoutMs: 300 }, () => found('v'.repeat(4000)))
    t.teardown(() => server.close(0))
    const c = await Client.connect(port)
    t.teardown(() => c.destroy())
    c.socket.pause()
    // ~20 MB of replies: far more than the socket buffers between us hold while nobody reads.
    c.write(Buffer.concat(Array.from({ length: 5000 }, (_, i) => f.request(`k${i}@x`))))
    await until(() => server.connections === 0, 10_000, 'the server to drop the connection')
    t.pass('dropped')
  })

  void t.test(`${f.name}: a pipelining client that floods requests is paused, not buffered`, async (t) => {
    const { server, port, lookup } = await startFlavor(f)
    t.teardown(() => server.close(0))
    const c = await Client.connect(port)
    t.teardown(() => c.destroy())
    lookup.hold('slow@x')
    t.teardown(() => lookup.release())
    // Write whole requests in 64 KiB chunks, honouring backpressure, until a drain takes over a
    // second. A server that keeps reading takes all 96 MiB; one that pauses stalls once the
    // loopback socket buffers (at most 32 MiB receive + 4 MiB send here) are full.
    const one = f.request('slow@x')
    const chunk = Buffer.concat(Array.from({ length: Math.floor(65536 / one.length) }, () => one))
    let accepted = 0
    while (accepted < 96 << 20) {
      accepted += chunk.length
      if (c.write(chunk)) continue
      const drained = await Promise.race([once(c.socket, 'drain').then(() => true), sleep(1000).then(() => false)])
      if (!drained) break
    }
    t.ok(accepted < 48 << 20, `the server stopped reading after ${(accepted / 2 ** 20).toFixed(1)} MiB`)
    t.equal(lookup.calls.length, 1, 'one lookup at a time')
  })
}

void t.test('listen() reports the bound port and rejects when the port is taken', async (t) => {
  const f = flavors[0]!
  const { server, port } = await startFlavor(f)
  t.teardown(() => server.close(0))
  t.ok(port > 0)
  const probe = connect({ port, host: '127.0.0.1' })
  await new Promise((resolve) => probe.once('connect', resolve))
  probe.destroy()
  const clash = f.create({
    host: '127.0.0.1',
    port,
    lookup: new FakeLookup(() => {
      throw new Error('unused')
    }),
    logger: silentLogger,
    limits: { maxConnections: 1, maxConnectionsPerClient: 1, firstRequestTimeoutMs: 1000, idleTimeoutMs: 1000, requestTimeoutMs: 1000, maxRequestBytes: 1024 },
  })
  await t.rejects(clash.listen(), { code: 'EADDRINUSE' })
  await clash.close(0)
})
