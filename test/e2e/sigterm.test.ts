// SIGTERM drains: the real program stops accepting at once, still answers the request it is
// working on, and exits 0. The in-flight request is held by a hung slapd (SIGSTOP), so it is
// genuinely waiting on the directory when the signal arrives.

import { connect } from 'node:net'
import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { startMailhostd } from '../harness/mailhostd.js'
import { startSlapd, slapdDirectory } from '../harness/slapd.js'
import { demoClusterConfig } from './demo-table.js'

function ask(port: number, key: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(`transport ${key}`)
    const s = connect({ port, host: '127.0.0.1' }, () => s.write(`${payload.length}:${payload.toString()},`))
    let reply = ''
    s.on('data', (d: Buffer) => {
      reply += d.toString()
      if (reply.endsWith(',')) {
        s.end()
        resolve(reply)
      }
    })
    s.on('error', reject)
    s.on('close', () => resolve(reply))
  })
}

eachPeerSet(t, async (t, set) => {
  t.test('SIGTERM finishes in-flight requests, then exits 0', async (t) => {
    const slapd = await startSlapd({ set })
    t.teardown(() => slapd.stop())
    const m = await startMailhostd({
      ...demoClusterConfig(),
      directory: slapdDirectory(slapd, { timeout: '1500ms' }),
      lookup: { deadline: '2s' },
    })
    t.match(await ask(m.ports.socketmap, 'alice@example.org'), /^\d+:OK lmtp:inet:\[10\.0\.0\.11\]:24,$/)

    await slapd.pause()
    t.teardown(() => slapd.resume())
    const inFlight = ask(m.ports.socketmap, 'bob@example.org')
    await new Promise((r) => setTimeout(r, 300))
    const stopped = m.stop('SIGTERM')
    await new Promise((r) => setTimeout(r, 200))

    await t.rejects(ask(m.ports.socketmap, 'carol@example.org'), { code: 'ECONNREFUSED' }, 'no new connections once draining')
    t.match(await inFlight, /^\d+:TEMP /, 'the in-flight request still gets its answer (TEMP: the directory hangs)')
    t.equal(await stopped, 0, 'exit status 0')
    t.match(m.proc.output(), /stopping: finishing in-flight requests/)
    t.match(m.proc.output(), /mailhostd stopped/)
  })
})
