// Acceptance for issue 13 items 3 and 4 against the built daemon on the demo SQL directory: what
// the brakes and the rate limits count a client and an account as, on the wire.
// - A client is one key however its address is written: IPv4-mapped IPv6 is its IPv4 address,
//   and IPv6 addresses count per /64 (login.brakes.ipv6Prefix): through the Dovecot verify
//   endpoint, nginx's Client-IP and the auth policy endpoint.
// - An account is the one the resolver finds, whichever of its names was typed: the auth policy
//   endpoint brakes bob+x@, BOB@ and bob@<alias domain> with bob's failures, and a rate limit
//   by sasl_username on the policy port holds ALICE@ and alice+1@ once alice is over it.
// Thresholds are set so that nothing is tarpitted (tarpitAfter = refuseAfter): every answer
// comes at once and the checks read answers, never times.

import t from 'tap'
import { ROOT, startMailhostd } from '../harness/mailhostd.js'
import { rateLimited } from '../../src/policy/replies.js'
import { Client } from '../server/client.js'
import { policyRequest, readAction } from '../server/policy-client.js'
import { demoClusterConfig } from './demo-table.js'

const SECRET = 'login-keys-secret'

t.test('brakes and rate limits count clients and accounts, not how they were written', async (t) => {
  const m = await startMailhostd(
    {
      ...demoClusterConfig(),
      directory: { type: 'sql' },
      login: {
        secret: SECRET,
        brakes: { window: '1h', ip: { tarpitAfter: 5, refuseAfter: 5 }, account: { tarpitAfter: 3, refuseAfter: 3 }, tarpit: '1s', maxTarpit: '1s' },
      },
      policy: { ruleSets: { default: {}, mx: {}, submission: { rateLimits: [{ by: 'sasl_username', messages: 2, window: '1h' }] } } },
    },
    { args: ['--seed-sql', `${ROOT}/fixtures/demo/directory.sql`] },
  )
  t.teardown(() => m.stop())
  const base = `http://127.0.0.1:${m.ports.http}`
  const post = async (path: string, body: unknown) => {
    const r = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-auth-key': SECRET }, body: JSON.stringify(body) })
    t.equal(r.status, 200, `${path} answered`)
    return r.json() as Promise<Record<string, unknown>>
  }
  const verify = (user: string, password: string, remoteIp: string) => post('/v1/dovecot/passdb/verify', { user, password, service: 'imap', remoteIp })
  const policy = (command: 'allow' | 'report', body: Record<string, unknown>) => post(`/v1/dovecot/policy?command=${command}`, body)
  const nginx = async (user: string, password: string, clientIp: string) => {
    const r = await fetch(`${base}/v1/nginx/auth`, {
      headers: { 'Auth-Method': 'plain', 'Auth-User': user, 'Auth-Pass': password, 'Auth-Protocol': 'imap', 'Auth-Login-Attempt': '1', 'Client-IP': clientIp, 'X-Auth-Key': SECRET },
    })
    return r.headers.get('auth-status')
  }
  const REFUSED = { result: 'mismatch', reason: 'too many failed logins' }

  t.test('IPv6: one /64 is one client (verify endpoint)', async (t) => {
    // Five wrong passwords, each for another made-up name from another address of one /64.
    for (let i = 1; i <= 5; i++) t.match(await verify(`nobody${i}@example.org`, 'guess', `2001:db8:64:1::${i}`), { result: 'unknown' }, `failure ${i}`)
    t.same(await verify('alice@example.org', 'wonderland', '2001:db8:64:1:ffff:ffff:ffff:ffff'), REFUSED, 'a sixth address of the /64 is refused')
    t.same(await verify('alice@example.org', 'wonderland', '2001:DB8:64:1:0:0:0:abc'), REFUSED, 'written another way: refused')
    t.match(await verify('alice@example.org', 'wonderland', '2001:db8:64:2::1'), { result: 'ok' }, 'the next /64 is another client')
  })

  t.test('IPv4-mapped IPv6 is its IPv4 address (verify and nginx)', async (t) => {
    for (let i = 1; i <= 5; i++) await verify(`ghost${i}@example.org`, 'guess', '198.51.100.7')
    t.same(await verify('alice@example.org', 'wonderland', '::ffff:198.51.100.7'), REFUSED, 'Dovecot verify from ::ffff:198.51.100.7: refused')
    t.equal(await nginx('alice@example.org', 'wonderland', '::ffff:198.51.100.7'), 'Too many failed logins, try again later', 'nginx Client-IP ::ffff:198.51.100.7: refused')
    t.equal(await nginx('alice@example.org', 'wonderland', '198.51.100.8'), 'OK', 'another IPv4 address logs in')
  })

  t.test('auth policy endpoint: one /64, IPv4-mapped, and one account whichever name', async (t) => {
    for (let i = 1; i <= 5; i++) await policy('report', { login: `x${i}@example.org`, remote: `2001:db8:99:7::${i}`, success: false })
    t.same(await policy('allow', { login: 'alice@example.org', remote: '2001:db8:99:7::1:2:3' }), { status: -1, msg: 'Too many failed logins, try again later' }, 'an address of the /64: refused')
    for (let i = 1; i <= 5; i++) await policy('report', { login: `y${i}@example.org`, remote: '192.0.2.77', success: false })
    t.same(await policy('allow', { login: 'alice@example.org', remote: '::ffff:192.0.2.77' }), { status: -1, msg: 'Too many failed logins, try again later' }, 'the IPv4-mapped form: refused')

    // bob's account: three failures from one address (its IP count stays under the IP limit).
    for (let i = 1; i <= 3; i++) await policy('report', { login: 'bob@example.org', remote: '203.0.113.40', success: false })
    for (const name of ['bob@example.org', 'bob+x@example.org', 'BOB@Example.ORG', 'bob@example.net']) {
      t.same(await policy('allow', { login: name, remote: '203.0.113.40' }), { status: -1, msg: 'Too many failed logins, try again later' }, `${name} from that address: bob's count, refused`)
    }
    t.same(await policy('allow', { login: 'bob@example.net', remote: '203.0.113.41' }), { status: 0, msg: '' }, 'bob from a clean address: allowed')

    // The other way round: failures under the variant names count on bob's account too.
    for (const name of ['alice+a@example.org', 'ALICE@example.org', 'alice@example.net']) await policy('report', { login: name, remote: '203.0.113.50', success: false })
    t.same(await policy('allow', { login: 'alice@example.org', remote: '203.0.113.50' }), { status: -1, msg: 'Too many failed logins, try again later' }, "three variants' failures are alice's")
  })

  t.test('rate limit by sasl_username on the policy port: the account, not the name as typed', async (t) => {
    const c = await Client.connect(m.ports.policy)
    t.teardown(() => c.socket.destroy())
    let seq = 0
    const ask = async (login: string) => {
      c.write(policyRequest({ request: 'smtpd_access_policy', protocol_state: 'RCPT', policy_context: 'submission', instance: `keys.${++seq}`, sasl_username: login, sender: login, recipient: 'bob@example.org', client_address: `192.0.2.${seq}` }))
      return readAction(c)
    }
    t.equal(await ask('alice@example.org'), 'DUNNO', 'message 1')
    t.equal(await ask('alice@example.org'), 'DUNNO', 'message 2')
    for (const login of ['alice@example.org', 'ALICE@example.org', 'alice+1@example.org', 'alice@example.net']) {
      t.equal(await ask(login), rateLimited('login', 'alice@example.org', 2, '1h'), `${login}: alice's limit`)
    }
    t.equal(await ask('bob@example.org'), 'DUNNO', 'another account has its own count')
  })
})
