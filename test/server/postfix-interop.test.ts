// Byte-exactness against the real Postfix client: `postmap -q` (Postfix's own socketmap and
// tcp_table code) against our listeners with an in-memory service. A throwaway config directory
// with an empty main.cf is all postmap needs; no Postfix daemon runs.

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { silentLogger } from '../../src/log.js'
import { found, notFound, perm, temp, type Answer } from '../../src/resolve/answer.js'
import { createSocketmapServer, createTcpTableServer } from '../../src/server/index.js'
import { FakeLookup, type Call } from './fake-lookup.js'
import { defaultLimits } from './flavors.js'

const VALUES: Record<string, string> = {
  'alice@example.org': 'lmtp:inet:[10.0.0.11]:24',
  'spaced@example.org': 'value with space and 50% off',
  'üser@exämple.org': 'smtp:[10.0.0.12]:25',
  'Foo Bar+Ext@Example.COM': 'key with a space',
}

function answer({ map, key }: Call): Answer {
  if (map !== 'transport') return perm(`unknown map "${map}"`)
  if (key === 'temp@example.org') return temp('directory down')
  const value = key === null ? undefined : VALUES[key]
  return value === undefined ? notFound('no such address') : found(value)
}

eachPeerSet(t, async (t, set) => {
  const configDir = await mkdtemp(join(tmpdir(), 'mailhostd-postmap-'))
  await writeFile(join(configDir, 'main.cf'), '')
  t.teardown(() => rm(configDir, { recursive: true, force: true }))

  const lookup = new FakeLookup(answer)
  const options = { host: '127.0.0.1', port: 0, lookup, logger: silentLogger, limits: defaultLimits }
  const socketmap = createSocketmapServer(options)
  const tcp = createTcpTableServer('transport', options)
  const smPort = (await socketmap.listen()).port
  const tcpPort = (await tcp.listen()).port
  t.teardown(() => Promise.all([socketmap.close(0), tcp.close(0)]))

  const tables = {
    socketmap: (map = 'transport') => `socketmap:inet:127.0.0.1:${smPort}:${map}`,
    tcp_table: () => `tcp:127.0.0.1:${tcpPort}`,
  }

  const postmap = (key: string, table: string) => set.run('postmap', ['-c', configDir, '-q', key, table], { timeoutMs: 30_000 })

  /** Lookups the service saw for `key` since `from`. */
  const callsFor = (key: string, from: number) => lookup.calls.slice(from).filter((c) => c.key === key)

  for (const [protocol, table] of Object.entries(tables)) {
    void t.test(`${protocol}: found values arrive intact, including spaces and %`, async (t) => {
      for (const [key, value] of Object.entries(VALUES)) {
        const from = lookup.calls.length
        const r = await postmap(key, table())
        t.equal(r.code, 0, `${key}: exit 0 (${r.stderr.trim()})`)
        t.equal(r.stdout, `${value}\n`, `${key}: value`)
        t.same(callsFor(key, from), [{ map: 'transport', key, protocol }], `${key}: arrived intact, asked once`)
      }
    })

    void t.test(`${protocol}: not found is exit 1 without output or warnings`, async (t) => {
      const from = lookup.calls.length
      const r = await postmap('nobody@example.org', table())
      t.equal(r.code, 1)
      t.equal(r.stdout, '')
      t.equal(r.stderr, '')
      t.equal(callsFor('nobody@example.org', from).length, 1, 'asked once: the reply was well-formed')
    })

    void t.test(`${protocol}: a temporary failure is a query error, not a miss`, async (t) => {
      const from = lookup.calls.length
      const r = await postmap('temp@example.org', table())
      t.equal(r.code, 1)
      t.equal(r.stdout, '')
      t.match(r.stderr, /query error/)
      if (protocol === 'socketmap') t.match(r.stderr, /directory down/, 'Postfix logs the TEMP reason')
      t.equal(callsFor('temp@example.org', from).length, 1, 'asked once: no reconnect-and-retry on a malformed reply')
    })

    void t.test(`${protocol}: one connection serves many sequential lookups`, async (t) => {
      const keys = ['alice@example.org', 'nobody@example.org', 'spaced@example.org', 'üser@exämple.org']
      const r = await set.run('postmap', ['-c', configDir, '-q', '-', table()], { input: keys.join('\n') + '\n', timeoutMs: 30_000 })
      t.equal(r.code, 0, r.stderr)
      t.equal(
        r.stdout,
        ['alice@example.org', 'spaced@example.org', 'üser@exämple.org'].map((k) => `${k}\t${VALUES[k]}\n`).join(''),
      )
    })
  }

  void t.test('socketmap: an unknown map name (PERM) is a query error, not a miss', async (t) => {
    const r = await postmap('alice@example.org', tables.socketmap('nosuchmap'))
    t.equal(r.code, 1)
    t.equal(r.stdout, '')
    t.match(r.stderr, /query error/)
    t.match(r.stderr, /unknown map/)
  })
})
