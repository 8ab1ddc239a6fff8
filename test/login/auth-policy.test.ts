// The auth policy endpoint (POST /v1/dovecot/policy) on the in-memory directory: it counts the
// account the login resolves to and the normalised client address, and a login the directory
// cannot resolve is neither "unknown" nor a way past the account's count.

import Fastify from 'fastify'
import t from 'tap'
import { Brakes } from '../../src/auth/brakes.js'
import { validateConfig } from '../../src/config/load.js'
import { loginRoutes } from '../../src/http/login-routes.js'
import { silentLogger } from '../../src/log.js'
import { demoDirectory, demoRegistry } from '../fakes/memory-directory.js'
import { routerFor } from './router.test.js'

const SECRET = 'policy-secret'

async function setup() {
  const dir = demoDirectory()
  const { router, lookups } = routerFor(dir)
  const brakes = new Brakes({ windowMs: 60_000, ip: { tarpitAfter: 10, refuseAfter: 10 }, account: { tarpitAfter: 3, refuseAfter: 3 }, tarpitMs: 1000, maxTarpitMs: 1000 })
  const config = validateConfig({ login: { secret: SECRET } }).login
  const registry = demoRegistry()
  const app = Fastify({ loggerInstance: silentLogger })
  await app.register(loginRoutes({ router, brakes, resolver: lookups, registry: () => registry, config }))
  const policy = async (command: 'allow' | 'report', body: Record<string, unknown>) => {
    const r = await app.inject({ method: 'POST', url: `/v1/dovecot/policy?command=${command}`, headers: { 'x-auth-key': SECRET }, payload: body })
    return r.json<{ status: number; msg: string }>()
  }
  return { dir, app, policy }
}

const ALLOW = { status: 0, msg: '' }
const REFUSE = { status: -1, msg: 'Too many failed logins, try again later' }

t.test('one account whichever name was typed; one client however its address was written', async (t) => {
  const { app, policy } = await setup()
  t.teardown(() => app.close())
  for (const login of ['bob+a@example.org', 'BOB@example.org', 'bob@example.net']) await policy('report', { login, remote: '::ffff:192.0.2.9', success: false })
  t.same(await policy('allow', { login: 'bob@example.org', remote: '192.0.2.9' }), REFUSE, "three variants' failures are bob's, from one client")
  t.same(await policy('allow', { login: 'alice@example.org', remote: '192.0.2.9' }), ALLOW, 'another account from that client: under the IP limit')
  t.same(await policy('allow', { login: 'bob@example.org', remote: '2001:db8::1' }), ALLOW, 'bob from a clean address')
  await policy('report', { login: 'bob@example.org', remote: '192.0.2.9', success: true })
  t.same(await policy('allow', { login: 'bob+z@example.org', remote: '192.0.2.9' }), ALLOW, "a success forgets that client's failures on bob, under any of his names")
})

t.test('directory down: a login it cannot resolve is judged as an account at its limit, never as unknown', async (t) => {
  const { dir, app, policy } = await setup()
  t.teardown(() => app.close())
  // An unknown name's failures from 192.0.2.20 make that client dirty.
  await policy('report', { login: 'ghost@example.org', remote: '192.0.2.20', success: false })
  t.same(await policy('allow', { login: 'alice@example.org', remote: '203.0.113.9' }), ALLOW, 'alice is cached now')
  dir.down()
  t.same(await policy('allow', { login: 'alice+new@example.org', remote: '203.0.113.1' }), ALLOW, 'a clean client: allowed (the account count never brakes it)')
  t.same(await policy('allow', { login: 'alice+new@example.org', remote: '192.0.2.20' }), REFUSE, 'a client that failed: refused while the account cannot be told')
  for (let i = 0; i < 3; i++) await policy('report', { login: 'ghost2@example.org', remote: '192.0.2.21', success: false })
  t.same(await policy('allow', { login: 'alice@example.org', remote: '192.0.2.21' }), ALLOW, 'those failures counted on the client only (3 of its 10): alice, cached, has none')
  dir.up()
  t.same(await policy('allow', { login: 'ghost2@example.org', remote: '192.0.2.20' }), ALLOW, 'nor on the name as if it were unknown: it has no failures of its own')
  t.same(await policy('allow', { login: 'alice+new@example.org', remote: '192.0.2.20' }), ALLOW, 'once resolved, the name is alice, who has none either')
})
