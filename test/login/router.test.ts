// Login routing on the in-memory directory: who may log in, fields, failures, brakes.

import t from 'tap'
import { Brakes } from '../../src/auth/brakes.js'
import { silentLogger } from '../../src/log.js'
import { LoginRouter } from '../../src/login/router.js'
import { Registry } from '../../src/resolve/registry.js'
import { DEMO_BACKENDS, demoDirectory, demoRegistry, type MemoryDirectory } from '../fakes/memory-directory.js'
import { lookupStack } from '../fakes/lookup-stack.js'

export function routerFor(dir: MemoryDirectory, opts: { registry?: Registry; deadlineMs?: number; lookupMode?: boolean } = {}) {
  const registry = opts.registry ?? demoRegistry()
  const { lookups } = lookupStack(dir, { registry, deadlineMs: opts.deadlineMs ?? 500, cache: { maxStaleMs: 0 } })
  const brakes = new Brakes({ windowMs: 60_000, ip: { tarpitAfter: 10, refuseAfter: 20 }, account: { tarpitAfter: 2, refuseAfter: 3 }, tarpitMs: 1000, maxTarpitMs: 4000 })
  const router = new LoginRouter({ resolver: lookups, registry: () => registry, directory: dir, brakes, config: { proxyField: 'proxy', lookupMode: opts.lookupMode ?? false }, deadlineMs: opts.deadlineMs ?? 500, logger: silentLogger })
  return { router, brakes, lookups }
}

const verify = (r: LoginRouter, user: string, password: string, service = 'imap', remoteIp = '192.0.2.1') => r.verify({ user, password, service, remoteIp }, 'test')

t.test('logins that may proceed get the backend fields', async (t) => {
  const { router } = routerFor(demoDirectory())
  t.same(await verify(router, 'alice@example.org', 'wonderland'), {
    result: 'ok', canonical: 'alice@example.org', host: '10.0.0.11', port: 143,
    fields: { proxy: 'y', host: '10.0.0.11', port: '143' }, tarpitSeconds: 0,
  }, 'no nopassword on verify: Dovecot would cache it as "any password"')
  t.match(await verify(router, 'bob@example.org', 'builder', 'pop3'), { result: 'ok', host: '10.0.0.12', fields: { port: '110' } })
  t.match(await verify(router, 'Alice.Liddell@Example.ORG', 'wonderland'), { result: 'ok', fields: { destuser: 'alice@example.org' } }, 'alternate: destuser')
  t.match(await verify(router, 'alice@example.net', 'wonderland'), { result: 'ok', fields: { destuser: 'alice@example.org' } }, 'alias domain')
  const sub = await verify(router, 'alice@example.org', 'wonderland', 'submission')
  t.notOk(sub.result === 'ok' && 'port' in sub.fields, 'no port for a service without one')
})

t.test('failures', async (t) => {
  const { router } = routerFor(demoDirectory())
  t.match(await verify(router, 'alice@example.org', 'nope'), { result: 'mismatch' })
  t.match(await verify(router, 'nobody@example.org', 'x'), { result: 'unknown' })
  t.match(await verify(router, 'someone@unserved.test', 'x'), { result: 'unknown' })
  t.match(await verify(router, 'postmaster@example.org', 'wonderland'), { result: 'unknown', reason: 'not a mailbox' }, 'an alias is not a login')
  t.match(await verify(router, 'x@example.com', 'builder'), { result: 'unknown' }, 'a catch-all is not a login')
  t.match(await verify(router, 'carol@example.org', 'wrong'), { result: 'mismatch' }, 'disabled with a wrong password: just a mismatch')
  t.match(await verify(router, 'carol@example.org', 'carol-disabled'), { result: 'disabled' })
})

t.test('directory trouble is a temporary failure, never unknown or mismatch', async (t) => {
  const dir = demoDirectory()
  const { router } = routerFor(dir)
  dir.down()
  t.match(await verify(router, 'alice@example.org', 'wonderland'), { result: 'tempfail' })
  t.match(await verify(router, 'nobody@example.org', 'x'), { result: 'tempfail' })
  dir.up()
  await verify(router, 'bob@example.org', 'builder') // cached resolution; now the password check hangs
  dir.delayMs = 2000
  const started = performance.now()
  t.match(await verify(router, 'bob@example.org', 'builder'), { result: 'tempfail' })
  t.ok(performance.now() - started < 1500, 'within the deadline')
})

t.test('backend trouble: unknown mailHost and maintenance are temporary failures', async (t) => {
  const registry = new Registry(demoRegistry().domains, [{ ...DEMO_BACKENDS[0]!, adminState: 'maintenance' }])
  const dir = demoDirectory()
  const { router } = routerFor(dir, { registry })
  t.match(await verify(router, 'alice@example.org', 'wonderland'), { result: 'tempfail', reason: /maintenance/ })
  t.match(await verify(router, 'bob@example.org', 'builder'), { result: 'tempfail', reason: 'backend unavailable (not configured)' })
})

t.test('lookups: passwordless services only', async (t) => {
  const { router } = routerFor(demoDirectory())
  t.match(await router.lookup({ user: 'bob@example.org', service: 'lmtp' }, 'test'), { result: 'ok', fields: { nopassword: 'y', port: '24' } })
  t.match(await router.lookup({ user: 'bob@example.org', service: 'doveadm' }, 'test'), { result: 'ok' })
  t.match(await router.lookup({ user: 'bob@example.org', service: 'imap' }, 'test'), { result: 'mismatch', reason: /plaintext.*login\.lookupMode/ })
  t.match(await router.lookup({ user: 'bob@example.org', service: 'pop3' }, 'test'), { result: 'mismatch', reason: /plaintext/ }, 'pop3 neither')
  t.notOk(Object.keys(await router.lookup({ user: 'bob@example.org', service: 'imap' }, 'test')).includes('fields'), 'no fields at all for a refused lookup')
  t.match(await router.lookup({ user: 'carol@example.org', service: 'lmtp' }, 'test'), { result: 'disabled' })
})

t.test('a proxy in lookup mode while login.lookupMode is off: a temporary failure, never a wrong password', async (t) => {
  const { router } = routerFor(demoDirectory())
  t.same(await router.lookup({ user: 'bob@example.org', service: 'imap', mode: 'lookup' }, 'test'), {
    result: 'tempfail', reason: 'login.lookupMode is off in mailhostd', tarpitSeconds: 0,
  }, 'mail clients keep their stored password until the admin fixes the mismatch')
  t.match(await router.lookup({ user: 'bob@example.org', service: 'lmtp', mode: 'lookup' }, 'test'), { result: 'ok' }, 'password-less services are answered as before')
  const on = routerFor(demoDirectory(), { lookupMode: true }).router
  t.match(await on.lookup({ user: 'bob@example.org', service: 'imap', mode: 'lookup' }, 'test'), { result: 'ok', fields: { nopassword: 'y' } }, 'with lookupMode on, the fields')
})

t.test('lookups with login.lookupMode: every service, nopassword, no password check and no brakes', async (t) => {
  const dir = demoDirectory()
  const { router, brakes } = routerFor(dir, { lookupMode: true })
  t.same(await router.lookup({ user: 'bob@example.org', service: 'imap', remoteIp: '192.0.2.7' }, 'test'), {
    result: 'ok', canonical: 'bob@example.org', host: '10.0.0.12', port: 143,
    fields: { proxy: 'y', host: '10.0.0.12', nopassword: 'y', port: '143' }, tarpitSeconds: 0,
  }, 'imap: the fields with nopassword (the backend checks the password)')
  t.match(await router.lookup({ user: 'Alice.Liddell@Example.ORG', service: 'pop3' }, 'test'), { result: 'ok', fields: { port: '110', nopassword: 'y', destuser: 'alice@example.org' } }, 'pop3, an alternate name')
  t.match(await router.lookup({ user: 'carol@example.org', service: 'imap' }, 'test'), { result: 'disabled' }, 'a disabled account is still refused')
  t.match(await router.lookup({ user: 'nobody@example.org', service: 'imap' }, 'test'), { result: 'unknown' })
  t.match(await router.lookup({ user: 'postmaster@example.org', service: 'imap' }, 'test'), { result: 'unknown', reason: 'not a mailbox' }, 'an alias is not a login')
  dir.down()
  t.match(await router.lookup({ user: 'someone@example.org', service: 'imap' }, 'test'), { result: 'tempfail' }, 'directory down: temporary failure')
  dir.up()
  // The brakes never count lookups: no password was tried here (the backends' auth policy
  // reports the failures). Three misses from one IP would tarpit a verify (tarpitAfter 2).
  for (let i = 0; i < 3; i++) await router.lookup({ user: 'nobody@example.org', service: 'imap', remoteIp: '192.0.2.8' }, 'test')
  t.equal(brakes.check({ room: 'unknown', key: 'nobody@example.org', display: 'nobody@example.org' }, '192.0.2.8').action, 'pass', 'unknown-user lookups are not counted')
})

t.test('brakes: tarpit after N account failures from one IP, refuse later without checking', async (t) => {
  const dir = demoDirectory()
  const { router } = routerFor(dir)
  t.match(await verify(router, 'alice@example.org', 'x1', 'imap', '192.0.2.66'), { result: 'mismatch', tarpitSeconds: 0 })
  t.match(await verify(router, 'alice@example.org', 'x2', 'imap', '192.0.2.66'), { result: 'mismatch', tarpitSeconds: 0 })
  t.match(await verify(router, 'alice@example.org', 'x3', 'imap', '192.0.2.66'), { result: 'mismatch', tarpitSeconds: 1 }, 'the N+1th is tarpitted')
  t.match(await verify(router, 'alice@example.org', 'wonderland', 'imap', '192.0.2.66'), { result: 'mismatch', refused: true }, 'refused even with the right password')
  t.match(await verify(router, 'alice@example.org', 'wonderland', 'imap', '203.0.113.9'), { result: 'ok', tarpitSeconds: 0 }, 'the owner on a clean IP')
  for (const other of ['alice+y@example.org', 'ALICE@example.net', 'alice.liddell@example.org']) {
    t.match(await verify(router, other, 'wonderland', 'imap', '192.0.2.66'), { result: 'mismatch', refused: true }, `${other}: same mailbox, same brakes`)
  }
})

t.test('brakes: a tarpitted attempt is not checked, counts as a failure, and leads to refusal', async (t) => {
  const dir = demoDirectory()
  const { router, brakes } = routerFor(dir)
  let checks = 0
  const check = dir.verifyPassword.bind(dir)
  dir.verifyPassword = (account, password) => (checks++, check(account, password))
  await verify(router, 'bob@example.org', 'x1', 'imap', '192.0.2.77')
  await verify(router, 'bob@example.org', 'x2', 'imap', '192.0.2.77')
  t.equal(checks, 2)
  t.same(await verify(router, 'bob@example.org', 'builder', 'imap', '192.0.2.77'), { result: 'mismatch', reason: 'too many failed logins', tarpitSeconds: 1 }, 'tarpitted: even the right password fails')
  t.equal(checks, 2, 'without a password check')
  t.match(brakes.check({ room: 'account', key: 'bob', display: 'bob@example.org' }, '192.0.2.77'), { action: 'refuse' }, 'and it counted: the next one is refused')
})

t.test('temporary failure reasons carry no internals', async (t) => {
  const dir = demoDirectory()
  const { router } = routerFor(dir)
  dir.down()
  t.match(await verify(router, 'alice@example.org', 'wonderland'), { result: 'tempfail', reason: 'directory unavailable' })
})
