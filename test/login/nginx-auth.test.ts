// nginx auth_http answers: headers in, headers out (protocols.md §8, docs/login.md).

import t from 'tap'
import { validateConfig } from '../../src/config/load.js'
import { nginxAuth, percentDecode } from '../../src/http/nginx-auth.js'
import { demoDirectory, demoRegistry } from '../fakes/memory-directory.js'
import { routerFor } from './router.test.js'

function setup(dir = demoDirectory()) {
  const { router, lookups } = routerFor(dir)
  const config = validateConfig({ login: { secret: 's', nginx: { maxAttempts: 3, wait: '2s' } } }).login
  const registry = demoRegistry()
  const ask = (h: Record<string, string>) =>
    nginxAuth({ 'auth-method': 'plain', 'auth-protocol': 'imap', 'auth-login-attempt': '1', 'client-ip': '192.0.2.1', ...h }, { router, resolver: lookups, registry: () => registry, config })
  return { ask, dir }
}

t.test('percent-decoding as nginx escapes', async (t) => {
  t.equal(percentDecode('p@ss%20word%25'), 'p@ss word%')
  t.equal(percentDecode('a+b'), 'a+b', 'plus is literal')
  t.equal(percentDecode(Buffer.from('üser', 'utf8').toString('latin1')), 'üser', 'raw UTF-8 bytes')
  t.equal(percentDecode('%zz%4'), '%zz%4', 'incomplete escapes kept')
  t.equal(percentDecode('%FF'), undefined, 'not UTF-8')
})

t.test('IMAP and POP3 logins', async (t) => {
  const { ask } = setup()
  t.same((await ask({ 'auth-user': 'alice@example.org', 'auth-pass': 'wonderland' })).headers, { 'Auth-Status': 'OK', 'Auth-Server': '10.0.0.11', 'Auth-Port': '143' })
  t.same((await ask({ 'auth-user': 'bob@example.org', 'auth-pass': 'builder', 'auth-protocol': 'pop3' })).headers, { 'Auth-Status': 'OK', 'Auth-Server': '10.0.0.12', 'Auth-Port': '110' })
  t.same((await ask({ 'auth-user': 'Alice.Liddell@example.org', 'auth-pass': 'wonderland' })).headers, { 'Auth-Status': 'OK', 'Auth-Server': '10.0.0.11', 'Auth-Port': '143', 'Auth-User': 'alice@example.org' }, 'the backend login uses the canonical name')
  t.same((await ask({ 'auth-user': 'alice@example.org', 'auth-pass': 'nope' })).headers, { 'Auth-Status': 'Invalid login or password', 'Auth-Wait': '2' })
  t.same((await ask({ 'auth-user': 'alice@example.org', 'auth-pass': 'nope', 'auth-login-attempt': '3' })).headers, { 'Auth-Status': 'Invalid login or password' }, 'last attempt: no Auth-Wait, nginx closes')
  t.same((await ask({ 'auth-user': 'carol@example.org', 'auth-pass': 'carol-disabled' })).headers, { 'Auth-Status': 'Account disabled', 'Auth-Wait': '2' })
  t.same((await ask({ 'auth-user': 'alice@example.org', 'auth-pass': 'x', 'auth-method': 'cram-md5' })).headers, { 'Auth-Status': 'Authentication method not supported', 'Auth-Wait': '2' })
  t.same((await ask({ 'auth-user': 'alice@example.org', 'auth-pass': 'x', 'auth-protocol': 'gopher' })).headers, { 'Auth-Status': 'unsupported protocol gopher' })
  t.same((await ask({ 'auth-user': 'alice@example.org', 'auth-pass': 'x', 'auth-protocol': 'g'.repeat(5000) })).headers, { 'Auth-Status': `unsupported protocol ${'g'.repeat(32)}` }, 'a long protocol name is cut before it goes back to the mail client')
})

t.test('SMTP: AUTH logins, and routing by the first RCPT with smtp_auth none', async (t) => {
  const { ask, dir } = setup()
  t.same((await ask({ 'auth-protocol': 'smtp', 'auth-user': 'bob@example.org', 'auth-pass': 'builder' })).headers, { 'Auth-Status': 'OK', 'Auth-Server': '10.0.0.12', 'Auth-Port': '25' })
  t.same((await ask({ 'auth-protocol': 'smtp', 'auth-user': 'bob@example.org', 'auth-pass': 'x' })).headers, { 'Auth-Status': 'Invalid login or password', 'Auth-Wait': '2', 'Auth-Error-Code': '535 5.7.8' })
  const none = { 'auth-protocol': 'smtp', 'auth-method': 'none', 'auth-user': '', 'auth-pass': '' }
  t.same((await ask({ ...none, 'auth-smtp-to': 'RCPT TO:<Alice+x@Example.ORG> SIZE=100' })).headers, { 'Auth-Status': 'OK', 'Auth-Server': '10.0.0.11', 'Auth-Port': '25' })
  t.same((await ask({ ...none, 'auth-smtp-to': 'RCPT TO:<nobody@example.org>' })).headers, { 'Auth-Status': 'mailbox unknown', 'Auth-Error-Code': '550 5.1.1' })
  dir.down()
  t.same((await ask({ ...none, 'auth-smtp-to': 'RCPT TO:<carol@example.org>' })).headers, { 'Auth-Status': 'Temporary lookup failure, try again later', 'Auth-Wait': '2', 'Auth-Error-Code': '451 4.3.0' })
  t.same((await ask({ 'auth-protocol': 'smtp', 'auth-user': 'carol@example.org', 'auth-pass': 'x' })).headers, { 'Auth-Status': 'Temporary authentication failure, try again later', 'Auth-Wait': '2', 'Auth-Error-Code': '451 4.3.0' })
})

t.test('brakes ride on Auth-Wait, and refuse without it', async (t) => {
  const { ask } = setup()
  const bad = { 'auth-user': 'alice@example.org', 'auth-pass': 'bad', 'client-ip': '192.0.2.66' }
  await ask(bad)
  await ask(bad)
  t.same((await ask(bad)).headers, { 'Auth-Status': 'Invalid login or password', 'Auth-Wait': '2' }, 'tarpit 1s is below the usual wait')
  t.same((await ask({ ...bad, 'auth-pass': 'wonderland' })).headers, { 'Auth-Status': 'Too many failed logins, try again later' })
  const last = await ask({ 'auth-user': 'bob@example.org', 'auth-pass': 'bad', 'client-ip': '192.0.2.66', 'auth-login-attempt': '3' })
  t.equal(last.delayMs, 0, 'bob has no failures yet: no tarpit')
})
