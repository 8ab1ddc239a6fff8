// The policy engine's decisions, on the in-memory directory through the real resolver and cache.

import t from 'tap'
import { validateConfig } from '../../src/config/load.js'
import { silentLogger } from '../../src/log.js'
import { PolicyEngine } from '../../src/policy/engine.js'
import { RateLimiter } from '../../src/policy/rate-limiter.js'
import * as R from '../../src/policy/replies.js'
import { demoDirectory, type MemoryDirectory } from '../fakes/memory-directory.js'
import { ADDRESSES, lookupStack } from '../fakes/lookup-stack.js'

function setup(dir: MemoryDirectory, policy: Record<string, unknown> = {}, deadlineMs = 500) {
  let now = 1_000_000
  const { lookups, cache } = lookupStack(dir, { deadlineMs, cache: { negativeTtlMs: 1, maxStaleMs: 0 } })
  const config = validateConfig({ policy })
  const engine = new PolicyEngine({ policy: config.policy, resolver: lookups, addresses: ADDRESSES, logger: silentLogger, limiter: new RateLimiter({ now: () => now }) })
  let seq = 0
  const ask = (attrs: Record<string, string | null>) =>
    engine.decide(new Map(Object.entries({ request: 'smtpd_access_policy', protocol_state: 'RCPT', instance: `i${++seq}`, sasl_username: '', sender: 'someone@remote.test', ...attrs })))
  return { engine, ask, cache, advance: (ms: number) => (now += ms) }
}

t.test('recipient check', async (t) => {
  const { ask } = setup(demoDirectory())
  t.equal(await ask({ recipient: 'alice@example.org' }), R.DUNNO)
  t.equal(await ask({ recipient: 'Alice+x@Example.ORG' }), R.DUNNO)
  t.equal(await ask({ recipient: 'postmaster@example.org' }), R.DUNNO)
  t.equal(await ask({ recipient: 'anyone@example.com' }), R.DUNNO, 'catch-all')
  t.equal(await ask({ recipient: 'nobody@example.org' }), R.UNKNOWN_RECIPIENT)
  t.equal(await ask({ recipient: 'nobody@example.net' }), R.UNKNOWN_RECIPIENT, 'alias domain without that user')
  t.equal(await ask({ recipient: 'someone@elsewhere.test' }), R.DUNNO, 'unserved domain: Postfix decides')
  t.equal(await ask({ recipient: 'not-an-address' }), R.DUNNO)
  t.equal(await ask({ recipient: null }), R.DUNNO, 'recipient not valid UTF-8')
  t.equal(await ask({ recipient: 'carol@example.org' }), R.DUNNO, 'disabled accepted by default')
  t.equal(await ask({ recipient: 'nobody@example.org', protocol_state: 'MAIL' }), R.DUNNO, 'only at RCPT')
})

t.test('disabled recipients rejected when configured; the check can be switched off', async (t) => {
  const dir = demoDirectory().alias('old@example.org', ['carol@example.org']).alias('mixed@example.org', ['carol@example.org', 'bob@example.org'])
  const { ask } = setup(dir, { ruleSets: { default: { recipients: { disabled: 'reject' } }, off: { recipients: { check: false } } } })
  t.equal(await ask({ recipient: 'carol@example.org' }), R.DISABLED_RECIPIENT)
  t.equal(await ask({ recipient: 'old@example.org' }), R.DISABLED_RECIPIENT, 'alias to a disabled mailbox only')
  t.equal(await ask({ recipient: 'mixed@example.org' }), R.DUNNO, 'one live mailbox is enough')
  t.equal(await ask({ recipient: 'nobody@example.org', policy_context: 'off' }), R.DUNNO)
})

t.test('directory trouble defers, within the deadline', async (t) => {
  const dir = demoDirectory()
  dir.down()
  const { ask } = setup(dir)
  t.equal(await ask({ recipient: 'alice@example.org' }), R.DIRECTORY_DEFER)
  t.equal(await ask({ recipient: 'bob@example.org', sasl_username: 'alice@example.org', sender: 'alice@example.org' }), R.DIRECTORY_DEFER)
  dir.up()
  dir.delayMs = 2000
  const started = performance.now()
  t.equal(await ask({ recipient: 'bob@example.org', sasl_username: 'alice@example.org', sender: 'alice@example.org' }), R.DIRECTORY_DEFER)
  t.ok(performance.now() - started < 1500, 'sender and recipient lookups run side by side, each within the deadline')
})

t.test('policy_context selects the rule set; an unknown one defers', async (t) => {
  const { ask } = setup(demoDirectory(), { defaultRuleSet: 'mx', ruleSets: { mx: {}, submission: { recipients: { check: false } } } })
  t.equal(await ask({ recipient: 'nobody@example.org' }), R.UNKNOWN_RECIPIENT, 'empty context: defaultRuleSet')
  t.equal(await ask({ recipient: 'nobody@example.org', policy_context: 'submission' }), R.DUNNO)
  t.equal(await ask({ recipient: 'alice@example.org', policy_context: 'submision' }), R.unknownContext('submision'))
  t.equal(await ask({ recipient: 'alice@example.org', policy_context: '__proto__' }), R.unknownContext('__proto__'))
})

t.test('sender-login check', async (t) => {
  const dir = demoDirectory().alias('team@example.org', ['alice@example.org', 'bob@example.org'])
  dir.account('boss', ['boss@example.org'], 'mx1.example.org', 'active', ['ceo@example.org', '@example.info', 'bad entry'])
  const { ask } = setup(dir)
  const as = (login: string, sender: string | null) => ask({ sasl_username: login, sender, recipient: 'bob@example.org' })
  for (const s of ['alice@example.org', 'ALICE@example.org', 'alice+lists@example.org', 'alice.liddell@example.org', 'alice@example.net', 'postmaster@example.org', 'team@example.org', '']) {
    t.equal(await as('alice@example.org', s), R.DUNNO, `alice may send as <${s}>`)
  }
  t.equal(await as('ALICE@EXAMPLE.ORG', 'alice@example.org'), R.DUNNO, 'login compared canonically')
  t.equal(await as('alice@example.net', 'alice@example.org'), R.DUNNO, 'a login in an alias domain is the account (as for the login router)')
  t.equal(await as('alice@example.org', 'bob@example.org'), R.senderNotOwned('bob@example.org', 'alice@example.org'))
  t.equal(await as('alice@example.org', 'alice@elsewhere.test'), R.senderNotOwned('alice@elsewhere.test', 'alice@example.org'))
  t.equal(await as('bob@example.org', 'x@example.com'), R.senderNotOwned('x@example.com', 'bob@example.org'), 'a catch-all grants no sending rights')
  t.equal(await as('alice', 'alice@example.org'), R.senderNotOwned('alice@example.org', 'alice'), 'login must be an address')
  t.equal(await as('postmaster@example.org', 'postmaster@example.org'), R.senderNotOwned('postmaster@example.org', 'postmaster@example.org'), 'an alias is not a login')
  t.equal(await as('alice@example.org', null), R.senderNotOwned('(not UTF-8)', 'alice@example.org'))
  t.equal(await ask({ sasl_username: null, sender: 'alice@example.org', recipient: 'bob@example.org' }), R.senderNotOwned('alice@example.org', '(not UTF-8)'), 'a login that is not UTF-8 owns nothing')
  for (const s of ['boss@example.org', 'ceo@example.org', 'CEO+x@example.org', 'anyone@example.info']) t.equal(await as('boss@example.org', s), R.DUNNO, `send-as <${s}>`)
  t.equal(await as('boss@example.org', 'cfo@example.org'), R.senderNotOwned('cfo@example.org', 'boss@example.org'))
  t.equal(await ask({ sasl_username: '', sender: 'bob@example.org', recipient: 'bob@example.org' }), R.DUNNO, 'no login, no check')
  t.equal(await ask({ sasl_username: 'alice@example.org', sender: 'bob@example.org', protocol_state: 'CONNECT' }), R.DUNNO, 'not a message state')
})

t.test('sender-login check can be switched off per rule set', async (t) => {
  const { ask } = setup(demoDirectory(), { ruleSets: { default: { senderLogin: { check: false } } } })
  t.equal(await ask({ sasl_username: 'alice@example.org', sender: 'bob@example.org', recipient: 'bob@example.org' }), R.DUNNO)
})

t.test('rate limits: per message, sliding window, per login and per client', async (t) => {
  const { engine, advance } = setup(demoDirectory(), {
    ruleSets: {
      default: {
        rateLimits: [
          { by: 'sasl_username', messages: 3, window: '10s' },
          { by: 'client_address', messages: 5, window: 60 },
        ],
      },
    },
  })
  const msg = (instance: string, login: string, client = '192.0.2.1', rcpt = 'bob@example.org') =>
    engine.decide(new Map(Object.entries({ protocol_state: 'RCPT', instance, sasl_username: login, sender: login, recipient: rcpt, client_address: client })))
  for (let i = 1; i <= 3; i++) t.equal(await msg(`m${i}`, 'alice@example.org'), R.DUNNO, `message ${i}`)
  t.equal(await msg('m3', 'alice@example.org', '192.0.2.1', 'alice@example.org'), R.DUNNO, 'another recipient of message 3 is not another message')
  t.equal(await msg('m4', 'alice@example.org'), R.rateLimited('login', 'alice@example.org', 3, '10s'))
  t.equal(await msg('m4', 'bob@example.org'), R.DUNNO, 'another login has its own count')
  t.equal(await msg('m5', 'alice@example.org', '192.0.2.1', 'nobody@example.org'), R.UNKNOWN_RECIPIENT, 'rejected, so not counted')
  advance(10_001)
  t.equal(await msg('m6', 'alice@example.org'), R.DUNNO, 'after the window')
  t.equal(await msg('m7', 'carol@example.org'), R.rateLimited('client', '192.0.2.1', 5, '60s'), 'per client address, across logins')
  t.equal(await msg('m7', 'carol@example.org', '192.0.2.2'), R.DUNNO)
  t.equal(await engine.decide(new Map([['protocol_state', 'RCPT'], ['recipient', 'bob@example.org']])), R.DUNNO, 'no instance, nothing to count')
})

t.test('rate limits by sasl_username count the account, not the name as typed', async (t) => {
  const { engine } = setup(demoDirectory(), { ruleSets: { default: { rateLimits: [{ by: 'sasl_username', messages: 2, window: '1h' }] } } })
  let seq = 0
  const msg = (login: string, sender = login) =>
    engine.decide(new Map(Object.entries({ protocol_state: 'RCPT', instance: `k${++seq}`, sasl_username: login, sender, recipient: 'bob@example.org', client_address: `192.0.2.${seq}` })))
  t.equal(await msg('alice@example.org'), R.DUNNO)
  t.equal(await msg('alice@example.org'), R.DUNNO)
  for (const name of ['alice@example.org', 'ALICE@example.org', 'alice+1@example.org', 'Alice+news@Example.ORG.', 'alice@example.net', 'alice.liddell@example.org']) {
    t.equal(await msg(name, 'alice@example.org'), R.rateLimited('login', 'alice@example.org', 2, '1h'), `${name} is alice's login`)
  }
  t.equal(await msg('bob@example.org'), R.DUNNO, 'another account has its own count')
})

t.test('a login that is no account is counted as typed, in a room that cannot flush accounts', async (t) => {
  const dir = demoDirectory()
  const limiter = new RateLimiter({ maxKeys: 10 })
  const config = validateConfig({ policy: { ruleSets: { default: { senderLogin: { check: false }, rateLimits: [{ by: 'sasl_username', messages: 2, window: '1h' }] } } } })
  const { lookups } = lookupStack(dir, { cache: { negativeTtlMs: 1, maxStaleMs: 0 } })
  const engine = new PolicyEngine({ policy: config.policy, resolver: lookups, addresses: ADDRESSES, logger: silentLogger, limiter })
  let seq = 0
  const msg = (login: string) => engine.decide(new Map(Object.entries({ protocol_state: 'RCPT', instance: `u${++seq}`, sasl_username: login, sender: '', recipient: 'bob@example.org' })))
  t.equal(await msg('alice@example.org'), R.DUNNO)
  t.equal(await msg('alice@example.org'), R.DUNNO)
  t.equal(await msg('ghost@example.org'), R.DUNNO)
  t.equal(await msg('GHOST@example.org'), R.DUNNO)
  t.equal(await msg('ghost@example.org'), R.rateLimited('login', 'ghost@example.org', 2, '1h'), 'an unknown name has a limit too')
  const notUtf8 = () => engine.decide(new Map<string, string | null>(Object.entries({ protocol_state: 'RCPT', instance: `u${++seq}`, sasl_username: null, sender: '', recipient: 'bob@example.org' })))
  t.equal(await notUtf8(), R.DUNNO)
  t.equal(await notUtf8(), R.DUNNO)
  t.equal(await notUtf8(), R.rateLimited('login', '(not utf-8)', 2, '1h'), 'so has a login that is not UTF-8')
  for (let i = 0; i < 100; i++) await msg(`nobody${i}@example.org`)
  t.equal(await msg('alice@example.org'), R.rateLimited('login', 'alice@example.org', 2, '1h'), "100 made-up names later, alice's count is still there")
})

t.test('a login the directory cannot resolve defers the message: never counted as an unknown name, never let through', async (t) => {
  const dir = demoDirectory()
  const rules = { senderLogin: { check: false }, recipients: { check: false }, rateLimits: [{ by: 'sasl_username', messages: 1, window: '1h' }] }
  const { engine } = setup(dir, { ruleSets: { default: rules } })
  const msg = (instance: string, login: string) => engine.decide(new Map(Object.entries({ protocol_state: 'RCPT', instance, sasl_username: login, sender: '', recipient: 'alice@example.org' })))
  t.equal(await msg('d1', 'bob@example.org'), R.DUNNO, 'bob is cached now')
  dir.down()
  t.equal(await msg('d2', 'bob@example.org'), R.rateLimited('login', 'bob@example.org', 1, '1h'), 'a cached account is still limited')
  t.equal(await msg('d3', 'bob+x@example.org'), R.DIRECTORY_DEFER, 'a name not cached: deferred while the directory is down')
  dir.up()
  t.equal(await msg('d4', 'bob+x@example.org'), R.rateLimited('login', 'bob@example.org', 1, '1h'), 'and limited as bob once it answers')
})

t.test('rate limiter memory stays bounded', async (t) => {
  const limiter = new RateLimiter({ maxKeys: 10, now: () => 1 })
  const refused = Array.from({ length: 1000 }, (_, i) => limiter.admit(`m${i}`, [{ bucket: `k${i}`, room: 'account', messages: 1, windowMs: 1000 }])).filter(Boolean)
  t.same(refused, [], '1000 distinct keys each admitted once')
  t.equal(limiter.admit('again', [{ bucket: 'k999', room: 'account', messages: 1, windowMs: 1000 }])?.bucket, 'k999', 'recent counters kept')
  t.equal(limiter.admit('again2', [{ bucket: 'k0', room: 'account', messages: 1, windowMs: 1000 }]), undefined, 'oldest counters evicted')
})

t.test('rate limits by client_address count one client however its address is written', async (t) => {
  const { engine } = setup(demoDirectory(), {
    ruleSets: { default: { rateLimits: [{ by: 'client_address', messages: 2, window: '1h' }, { by: 'client_address', messages: 2, window: '2h', ipv6Prefix: 128 }] } },
  })
  let seq = 0
  const msg = (client: string) =>
    engine.decide(new Map(Object.entries({ protocol_state: 'RCPT', instance: `c${++seq}`, sender: 'someone@remote.test', recipient: 'bob@example.org', client_address: client })))
  t.equal(await msg('198.51.100.7'), R.DUNNO)
  t.equal(await msg('::ffff:198.51.100.7'), R.DUNNO, 'IPv4-mapped is the same client')
  t.equal(await msg('::ffff:c633:6407'), R.rateLimited('client', '198.51.100.7', 2, '1h'), 'in hex too')
  t.equal(await msg('2001:db8:1:2::1'), R.DUNNO)
  t.equal(await msg('2001:db8:1:2:ffff::9'), R.DUNNO, 'another address of the /64: counted together by the 1h limit, apart by the /128 one')
  t.equal(await msg('2001:db8:1:2::abcd'), R.rateLimited('client', '2001:db8:1:2::/64', 2, '1h'), 'a third address of the /64')
  t.equal(await msg('2001:db8:1:3::1'), R.DUNNO, 'the next /64 has its own count')
  t.equal(await msg('unknown'), R.DUNNO, 'no IP address: counted as written')
  t.equal(await msg('unknown'), R.DUNNO)
  t.equal(await msg('unknown'), R.rateLimited('client', 'unknown', 2, '1h'))
})
