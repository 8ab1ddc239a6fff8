// mailhostctl's HTTP client against a node:http server: what it sends, how answers and failures
// become values and typed errors, and the single retry for requests that ask for it.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { AdminClient, ApiError, apiPath, BadAnswer, DaemonUnreachable, displayUrl } from '../../src/cli/client.js'
import { freePort } from '../harness/ports.js'

interface Seen {
  method: string
  url: string
  headers: IncomingMessage['headers']
  body: string
}

/** A server answering each request with the next handler (the last one repeats). */
async function serve(t: Test, ...handlers: ((req: IncomingMessage, res: ServerResponse) => void)[]) {
  const seen: Seen[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() })
      const h = handlers[Math.min(seen.length - 1, handlers.length - 1)]!
      h(req, res)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) => (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(status, { 'content-type': status >= 400 ? 'application/problem+json' : 'application/json', ...headers })
  res.end(JSON.stringify(body))
}
const reset = (req: IncomingMessage) => req.socket.destroy()

t.test('requests: path, query, JSON body, bearer token, headers', async (t) => {
  const s = await serve(t, json(201, { ok: true }, { 'idempotent-replayed': 'true' }))
  const c = new AdminClient({ url: `${s.url}/`, token: 'mh_secret' })
  const res = await c.send({ method: 'POST', path: apiPath('accounts', 'a+b/c@example.org'), query: { x: 'y z', n: 3, gone: undefined }, body: { address: 'a' }, headers: { 'Idempotency-Key': 'k1' } })
  t.same(res, { status: 201, body: { ok: true }, replayed: true })
  const [req] = s.seen
  t.equal(req?.method, 'POST')
  t.equal(req?.url, '/v1/accounts/a%2Bb%2Fc%40example.org?x=y+z&n=3')
  t.equal(req?.headers.authorization, 'Bearer mh_secret')
  t.equal(req?.headers['content-type'], 'application/json')
  t.equal(req?.headers['idempotency-key'], 'k1')
  t.equal(req?.body, '{"address":"a"}')

  await new AdminClient({ url: s.url }).send({ method: 'GET', path: apiPath('backends') })
  t.notOk(s.seen[1]?.headers.authorization, 'no token, no header')
  t.notOk(s.seen[1]?.headers['content-type'], 'no body, no content-type (fastify refuses an empty JSON body)')
})

t.test('a base URL with a path prefix (behind a proxy)', async (t) => {
  const s = await serve(t, json(200, {}))
  await new AdminClient({ url: `${s.url}/mailhostd` }).send({ method: 'GET', path: apiPath('domains') })
  t.equal(s.seen[0]?.url, '/mailhostd/v1/domains')
})

t.test('answers without a body, and bodies that are not JSON', async (t) => {
  const s = await serve(
    t,
    (_q, res) => res.writeHead(204).end(),
    (_q, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>'),
    (_q, res) => res.writeHead(502, { 'content-type': 'text/html' }).end('<html>bad gateway</html>'),
  )
  const c = new AdminClient({ url: s.url })
  t.same(await c.send({ method: 'DELETE', path: apiPath('accounts', 'a@example.org') }), { status: 204, body: undefined, replayed: false })
  await t.rejects(c.send({ method: 'GET', path: apiPath('accounts') }), BadAnswer)
  await t.rejects(c.send({ method: 'GET', path: apiPath('accounts') }), { name: 'ApiError', status: 502, code: 'HTTP 502', detail: 'Bad Gateway' })
})

t.test('problem+json becomes an ApiError', async (t) => {
  const s = await serve(t, json(409, { type: 'about:blank', title: 'Conflict', status: 409, detail: 'alice@example.org is taken', code: 'MH_ADDRESS_TAKEN' }))
  const e = await new AdminClient({ url: s.url }).send({ method: 'POST', path: apiPath('accounts'), body: {} }).catch((e: unknown) => e)
  t.ok(e instanceof ApiError)
  t.match(e, { status: 409, code: 'MH_ADDRESS_TAKEN', detail: 'alice@example.org is taken' })
})

t.test('redirects are not followed: the token goes only where --url says', async (t) => {
  const target = await serve(t, json(200, {}))
  const s = await serve(t, (_q, res) => res.writeHead(307, { location: `${target.url}/v1/accounts` }).end())
  await t.rejects(new AdminClient({ url: s.url, token: 'mh_secret' }).send({ method: 'GET', path: apiPath('accounts') }), { name: 'ApiError', status: 307, detail: /^redirected to http/ })
  t.equal(target.seen.length, 0)
})

t.test('a broken connection: retried once when asked, with the same request', async (t) => {
  const s = await serve(t, reset, json(201, { created: true }))
  const retries: string[] = []
  const c = new AdminClient({ url: s.url, onRetry: (why) => retries.push(why) })
  const res = await c.send({ method: 'POST', path: apiPath('accounts'), body: { a: 1 }, headers: { 'Idempotency-Key': 'k' }, retry: true })
  t.same(res.body, { created: true })
  t.equal(s.seen.length, 2)
  t.same([s.seen[1]?.body, s.seen[1]?.headers['idempotency-key']], ['{"a":1}', 'k'])
  t.match(retries, [/^connection to mailhostd at http:\/\/127\.0\.0\.1:\d+ lost: .*; the change may or may not have been made$/])

  const twice = await serve(t, reset)
  const e = await new AdminClient({ url: twice.url }).send({ method: 'POST', path: apiPath('accounts'), retry: true }).catch((e: unknown) => e)
  t.ok(e instanceof DaemonUnreachable && e.retryable, 'gives up after one retry')
  t.equal(twice.seen.length, 2)

  const once = await serve(t, reset, json(200, {}))
  await t.rejects(new AdminClient({ url: once.url }).send({ method: 'POST', path: apiPath('domains') }), DaemonUnreachable, 'not retried unless asked')
  t.equal(once.seen.length, 1)
})

t.test('a timeout: retryable, retried when asked', async (t) => {
  const s = await serve(
    t,
    () => {
      /* never answers */
    },
    json(200, { late: false }),
  )
  const c = new AdminClient({ url: s.url, timeoutMs: 200 })
  const res = await c.send({ method: 'POST', path: apiPath('accounts'), retry: true })
  t.same(res.body, { late: false })

  const silent = await serve(t, () => {
    /* never answers */
  })
  const e = await new AdminClient({ url: silent.url, timeoutMs: 200 }).send({ method: 'GET', path: apiPath('accounts') }).catch((e: unknown) => e)
  t.ok(e instanceof DaemonUnreachable)
  t.match(e, { message: /^no answer from mailhostd at http:\/\/127\.0\.0\.1:\d+ within 0\.2 s$/, retryable: true }, 'a read says nothing about changes')
})

t.test('a refused connection: unreachable, never retried', async (t) => {
  const port = await freePort()
  let retried = false
  const e = await new AdminClient({ url: `http://127.0.0.1:${port}`, onRetry: () => (retried = true) })
    .send({ method: 'POST', path: apiPath('accounts'), retry: true })
    .catch((e: unknown) => e)
  t.ok(e instanceof DaemonUnreachable)
  t.match(e, { message: /^cannot reach mailhostd at http:\/\/127\.0\.0\.1:\d+: connect ECONNREFUSED/, retryable: false })
  t.notOk(retried)
})

t.test('displayUrl drops credentials', async (t) => {
  t.equal(displayUrl('http://user:secret@mailhostd.example:10090/prefix/'), 'http://mailhostd.example:10090/prefix')
  t.equal(displayUrl('http://127.0.0.1:10090'), 'http://127.0.0.1:10090')
  t.equal(apiPath('moves', 17, 'complete'), 'v1/moves/17/complete')
})
