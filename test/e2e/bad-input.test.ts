// Acceptance: garbage bytes, a 1 MiB frame and a stalled half frame on each listener neither
// crash mailhostd nor delay answers on other connections. Plus invalid UTF-8 and oversized
// keys, which must get a protocol answer, never a wrong one.

import { connect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { isAlive } from '../harness/process.js'
import { postmapQuery, ROOT, socketmap, startMailhostd, tcp } from '../harness/mailhostd.js'
import { demoClusterConfig, DEMO_ROUTES } from './demo-table.js'

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' }, () => resolve(s))
    s.on('error', reject)
  })
}

/** Writes bytes, collects whatever comes back until the server closes or `ms` pass. */
async function exchange(port: number, bytes: Buffer, ms = 3000): Promise<{ reply: Buffer; closed: boolean }> {
  const s = await open(port)
  const chunks: Buffer[] = []
  return new Promise((resolve) => {
    let closed = false
    const done = () => {
      s.destroy()
      resolve({ reply: Buffer.concat(chunks), closed })
    }
    const timer = setTimeout(done, ms)
    s.on('data', (d) => chunks.push(d))
    s.on('error', () => undefined)
    s.on('close', () => {
      closed = true
      clearTimeout(timer)
      done()
    })
    s.write(bytes, () => undefined)
  })
}

t.test('bad input on every listener', async (t) => {
  const m = await startMailhostd(
    { ...demoClusterConfig(), directory: { type: 'sql' }, limits: { requestTimeout: '30s' } },
    { args: ['--seed-sql', `${ROOT}/fixtures/demo/directory.sql`] },
  )
  t.teardown(() => m.stop())
  const listeners = [
    { name: 'socketmap', port: m.ports.socketmap, map: socketmap(m.ports.socketmap, 'transport'), half: Buffer.from('40:transport alice@exa') },
    { name: 'tcp_table transport', port: m.ports.transport, map: tcp(m.ports.transport), half: Buffer.from('get alice@exa') },
    { name: 'tcp_table recipient', port: m.ports.recipient, map: tcp(m.ports.recipient), half: Buffer.from('get bob@exa') },
  ]

  // Warm the answer first, so the timing below measures interference from the bad
  // connections, not a cold first query.
  for (const l of listeners) t.equal((await postmapQuery(l.map, 'alice@example.org')).code, 0, `${l.name}: warm`)

  for (const l of listeners) {
    // Stalled half frames stay open on this listener for the whole subtest.
    const stalled = await Promise.all([open(l.port), open(l.port)])
    for (const s of stalled) {
      s.on('error', () => undefined)
      s.write(l.half)
    }
    const garbage = await exchange(l.port, randomBytes(4096))
    t.ok(garbage.closed, `${l.name}: garbage gets the connection closed`)
    const huge = await exchange(l.port, Buffer.concat([Buffer.from(l.name === 'socketmap' ? '1048576:' : 'get '), Buffer.alloc(1 << 20, 0x61)]))
    t.ok(huge.closed, `${l.name}: a 1 MiB frame gets the connection closed`)
    t.match(huge.reply.toString(), l.name === 'socketmap' ? /PERM/ : /^400 /, `${l.name}: with a protocol error reply first`)

    const started = Date.now()
    const r = await postmapQuery(l.map, 'alice@example.org')
    const expected = l.name === 'tcp_table recipient' ? 'mx1.example.org' : DEMO_ROUTES.mx1
    t.same({ code: r.code, out: r.stdout.trim() }, { code: 0, out: expected }, `${l.name}: other connections still answered`)
    t.ok(Date.now() - started < 2000, `${l.name}: and promptly (${Date.now() - started} ms)`)
    for (const s of stalled) s.destroy()
  }

  // Invalid UTF-8 keys are malformed addresses: an authoritative miss, never an error or a crash.
  const key = Buffer.from([0x61, 0xff, 0xfe, 0x40, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72, 0x67])
  const payload = Buffer.concat([Buffer.from('transport '), key])
  const sm = await exchange(m.ports.socketmap, Buffer.concat([Buffer.from(`${payload.length}:`), payload, Buffer.from(',')]), 1000)
  t.equal(sm.reply.toString(), '9:NOTFOUND ,', 'socketmap: invalid UTF-8 key is NOTFOUND')
  const tc = await exchange(m.ports.transport, Buffer.from('get a%FF%FE@example.org\n'), 1000)
  t.match(tc.reply.toString(), /^500 /, 'tcp_table: invalid UTF-8 key is 500')

  // Garbage at the HTTP listener, then a normal request.
  const http = await exchange(m.ports.http, Buffer.concat([randomBytes(2048), Buffer.from('\r\n\r\n')]))
  t.match(http.reply.toString(), /^HTTP\/1\.1 400|^$/, 'http: garbage gets 400 or a close')
  const health = await fetch(`http://127.0.0.1:${m.ports.http}/healthz`)
  t.equal(health.status, 200)

  t.ok(isAlive(m.pid), 'mailhostd is still running')
  t.notMatch(m.proc.output(), /uncaught|unhandled|FATAL/i, 'no crash or unhandled error in the log')
})
