// The doveadm HTTP API client (src/pools/doveadm.ts) against a fake doveadm on loopback: `who`
// answers its users; a reply larger than the cap (streamed without a length, or declared by its
// Content-Length) is given up with MH_DOVEADM_REPLY_TOO_LARGE and the connection closed rather
// than buffered whole; a body that stalls past the timeout is a DoveadmError too; the session
// watch counts a reply too large as one of its errors; the default cap holds `who` for a member
// with 100,000 sessions.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { ErrorCodes } from '../../src/errors.js'
import { silentLogger } from '../../src/log.js'
import { DoveadmError, doveadmWho, MAX_DOVEADM_REPLY_BYTES, type DoveadmConfig } from '../../src/pools/doveadm.js'
import { SessionWatch } from '../../src/pools/session-watch.js'
import { Registry, type PoolInfo, type PoolMember } from '../../src/resolve/registry.js'
import { until } from '../harness/until.js'

const API_KEY = 'doveadm-test-key'
/** A cap small enough to pass quickly, for the tests that exceed it. */
const SMALL_CAP = 64 * 1024
/** The most the endless reply streams before giving up on its own: far beyond anything a socket buffers. */
const STREAM_LIMIT = 256 * 1024 * 1024

/** A `who` row as Dovecot answers it (one per user and service). */
const row = (i: number) => ({ username: `user${String(i).padStart(6, '0')}@example.org`, connections: '1', service: 'imap', pids: `(${100_000 + i})`, ips: `(192.0.2.${i % 250})` })

type Handler = (req: IncomingMessage, res: ServerResponse) => void

/** A fake doveadm on 127.0.0.1 whose every request `handle` answers (after reading the request). */
async function fakeDoveadm(t: Test, handle: Handler): Promise<{ server: Server; config: DoveadmConfig; requests: { authorization?: string; body: unknown }[] }> {
  const requests: { authorization?: string; body: unknown }[] = []
  const server = createServer((req, res) => {
    let text = ''
    req.on('data', (c: Buffer) => (text += c.toString()))
    req.on('end', () => {
      requests.push({ ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}), body: JSON.parse(text) })
      handle(req, res)
    })
  })
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return { server, config: { port: (server.address() as AddressInfo).port, apiKey: API_KEY, timeout: '5s' }, requests }
}

/**
 * A `who` reply without a length that never ends by itself: rows as fast as the client takes
 * them, until the client closes the connection (or STREAM_LIMIT). Says how much it sent and
 * whether the client hung up.
 */
function endlessWho() {
  const seen = { sent: 0, closedByClient: false }
  const handle: Handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.on('close', () => (seen.closedByClient = !res.writableFinished))
    let i = 0
    const pump = () => {
      while (!res.destroyed) {
        if (seen.sent > STREAM_LIMIT) return res.end(']]]')
        const chunk = `${i === 0 ? '[["doveadmResponse",[' : ','}${JSON.stringify(row(i++))}`
        seen.sent += Buffer.byteLength(chunk)
        if (!res.write(chunk)) return res.once('drain', pump)
      }
    }
    pump()
  }
  return { handle, seen }
}

const isCoded = (code: string) => (e: unknown) => e instanceof DoveadmError && e.code === code
/** What `p` rejected with (undefined when it resolved). */
const failureOf = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  )

t.test('who: the users with live sessions, asked with the key', async (t) => {
  const rows = [row(1), row(2), { username: 'x' }, { nope: 1 }]
  const { config, requests } = await fakeDoveadm(t, (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify([['doveadmResponse', rows, 'c1']])))
  t.same(await doveadmWho(config, '127.0.0.1'), [row(1).username, row(2).username, 'x'])
  t.same(requests, [{ authorization: `X-Dovecot-API ${Buffer.from(API_KEY).toString('base64')}`, body: [['who', {}, 'c1']] }])
})

t.test('a reply streamed beyond the cap is given up, and the connection closed, not read whole', async (t) => {
  const { handle, seen } = endlessWho()
  const { config } = await fakeDoveadm(t, handle)
  const error = await failureOf(doveadmWho(config, '127.0.0.1', { maxReplyBytes: SMALL_CAP }))
  t.ok(isCoded(ErrorCodes.DOVEADM_REPLY_TOO_LARGE)(error), `MH_DOVEADM_REPLY_TOO_LARGE: ${String(error)}`)
  t.match((error as Error).message, new RegExp(`more than ${SMALL_CAP} bytes`))
  t.notMatch((error as Error).message, API_KEY, 'the message never holds the key')
  t.equal((error as DoveadmError).transient, false)
  await until('the fake to see the connection closed', 10_000, () => (seen.closedByClient ? true : undefined))
  t.ok(seen.sent < STREAM_LIMIT, `the reader stopped it early (${seen.sent} bytes sent)`)
})

t.test('a reply whose Content-Length is beyond the cap is refused before its body is read', async (t) => {
  const declared = SMALL_CAP + 1
  let written = 0
  const { config } = await fakeDoveadm(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(declared) })
    // Only the first bytes: a reader waiting for the whole body would hang until the timeout.
    res.write('[["doveadmResponse",[')
    written = 21
  })
  const started = performance.now()
  const error = await failureOf(doveadmWho({ ...config, timeout: '30s' }, '127.0.0.1', { maxReplyBytes: SMALL_CAP }))
  t.ok(isCoded(ErrorCodes.DOVEADM_REPLY_TOO_LARGE)(error), `MH_DOVEADM_REPLY_TOO_LARGE: ${String(error)}`)
  t.ok(performance.now() - started < 10_000, 'at once, not at the timeout')
  t.equal(written, 21)
})

t.test('a body that stalls past the timeout, or an HTTP error, is a DoveadmError', async (t) => {
  const stalling = await fakeDoveadm(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.write('[["doveadmResponse",[') // and nothing more
  })
  const stalled = await failureOf(doveadmWho({ ...stalling.config, timeout: '300ms' }, '127.0.0.1'))
  t.ok(isCoded(ErrorCodes.DOVEADM_FAILED)(stalled), `MH_DOVEADM_FAILED: ${String(stalled)}`)
  t.match((stalled as Error).message, /no answer within 300 ms/)
  const refusing = await fakeDoveadm(t, (_req, res) => res.writeHead(401).end('no'))
  const refused = await failureOf(doveadmWho(refusing.config, '127.0.0.1'))
  t.ok(isCoded(ErrorCodes.DOVEADM_FAILED)(refused), `MH_DOVEADM_FAILED: ${String(refused)}`)
  t.match((refused as Error).message, /HTTP 401/)
})

t.test('the session watch counts a reply too large as one of its errors and pins nobody', async (t) => {
  const { handle } = endlessWho()
  const { config } = await fakeDoveadm(t, handle)
  const ports = { lmtp: 24, smtp: 25, imap: 143, pop3: 110 }
  const member: PoolMember = { kind: 'member', id: 'm1', pool: 'pool1', address: '127.0.0.1', route: 'lmtp', ports, weight: 1 }
  const pool: PoolInfo = { kind: 'pool', id: 'pool1', mailHosts: [], route: 'lmtp', ports, members: [member], pinForMs: 60_000 }
  let errors = 0
  let queries = 0
  const watch = new SessionWatch({
    store: {
      query: () => {
        queries++
        return Promise.reject(new Error('no pins may be written'))
      },
    },
    registry: () => new Registry([], [pool]),
    who: (address) => doveadmWho(config, address, { maxReplyBytes: SMALL_CAP }),
    logger: silentLogger,
    onError: () => errors++,
  })
  await watch.round()
  t.equal(errors, 1, 'one error for the member')
  t.equal(queries, 0, 'nothing written for a list that was not read')
})

t.test('the cap holds `who` for a member with 100,000 sessions', async (t) => {
  t.equal(MAX_DOVEADM_REPLY_BYTES, 32 * 1024 * 1024)
  const rows = Array.from({ length: 100_000 }, (_, i) => row(i))
  const bytes = Buffer.byteLength(JSON.stringify([['doveadmResponse', rows, 'c1']]))
  t.ok(bytes < MAX_DOVEADM_REPLY_BYTES / 2, `${bytes} bytes: under half the cap`)
})
