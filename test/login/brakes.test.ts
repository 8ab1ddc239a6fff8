import t from 'tap'
import { Brakes, type BrakesOptions } from '../../src/auth/brakes.js'
import type { AccountKey } from '../../src/resolve/login-account.js'

function setup(extra: Partial<BrakesOptions> = {}) {
  let now = 1_000_000
  const brakes = new Brakes({
    windowMs: 60_000,
    ip: { tarpitAfter: 4, refuseAfter: 8 },
    account: { tarpitAfter: 2, refuseAfter: 4 },
    tarpitMs: 1000,
    maxTarpitMs: 8000,
    now: () => now,
    ...extra,
  })
  return { brakes, advance: (ms: number) => (now += ms) }
}

/** An account as accountKey() keys it (the entry id; the address only shows). */
const acct = (address: string): AccountKey => ({ room: 'account', key: `id:${address}`, display: address })
/** A name that is no account. */
const unknown = (name: string): AccountKey => ({ room: 'unknown', key: name, display: name })

t.test('an attacker IP on one account: tarpit after N failures, refuse later', async (t) => {
  const { brakes } = setup()
  const seen: string[] = []
  for (let i = 0; i < 6; i++) {
    const v = brakes.check(acct('alice@example.org'), '192.0.2.66')
    seen.push(v.action === 'tarpit' ? `tarpit ${v.seconds}s` : v.action)
    if (v.action !== 'refuse') brakes.failure(acct('alice@example.org'), '192.0.2.66')
  }
  t.same(seen, ['pass', 'pass', 'tarpit 1s', 'tarpit 2s', 'refuse', 'refuse'])
})

t.test('the owner on a clean IP is never braked by the account count', async (t) => {
  const { brakes } = setup()
  for (let i = 0; i < 10; i++) brakes.failure(acct('alice@example.org'), `198.51.100.${i}`)
  t.same(brakes.check(acct('alice@example.org'), '203.0.113.5'), { action: 'pass' }, 'clean IP passes')
  t.equal(brakes.check(acct('alice@example.org'), '198.51.100.1').action, 'refuse', 'an IP that failed is refused on that account')
  t.equal(brakes.check(acct('alice@example.org'), undefined).action, 'refuse', 'no IP known: never clean')
  t.same(brakes.check(acct('bob@example.org'), '198.51.100.1'), { action: 'pass' }, 'the same IP on another account, below IP thresholds')
})

t.test('per-IP limits apply across accounts; tarpit doubles up to the cap', async (t) => {
  const { brakes } = setup()
  for (let i = 0; i < 7; i++) brakes.failure(acct(`user${i}@example.org`), '192.0.2.9')
  t.same(brakes.check(acct('new@example.org'), '192.0.2.9'), { action: 'tarpit', seconds: 8, scope: 'ip' })
  brakes.failure(acct('new@example.org'), '192.0.2.9')
  t.same(brakes.check(acct('other@example.org'), '192.0.2.9'), { action: 'refuse', scope: 'ip' })
})

t.test('failures expire with the window; success forgets that IP on that account', async (t) => {
  const { brakes, advance } = setup()
  for (let i = 0; i < 4; i++) brakes.failure(acct('alice@example.org'), '192.0.2.1')
  t.equal(brakes.check(acct('alice@example.org'), '192.0.2.1').action, 'refuse')
  advance(60_001)
  t.same(brakes.check(acct('alice@example.org'), '192.0.2.1'), { action: 'pass' })
  for (let i = 0; i < 3; i++) brakes.failure(acct('alice@example.org'), '192.0.2.1')
  brakes.success(acct('alice@example.org'), '192.0.2.1')
  t.same(brakes.check(acct('alice@example.org'), '192.0.2.1'), { action: 'pass' }, 'after a success')
})

t.test('one client however its address is written: IPv4-mapped IPv6 is IPv4, IPv6 counts per /64', async (t) => {
  const { brakes } = setup()
  for (let i = 0; i < 8; i++) brakes.failure(acct(`user${i}@example.org`), '198.51.100.7')
  t.same(brakes.check(acct('new@example.org'), '::ffff:198.51.100.7'), { action: 'refuse', scope: 'ip' }, 'the mapped form is the same client')
  t.same(brakes.check(acct('new@example.org'), '::FFFF:C633:6407'), { action: 'refuse', scope: 'ip' }, 'in hex too')

  for (let i = 1; i <= 8; i++) brakes.failure(acct(`user${i}@example.org`), `2001:db8:1:2::${i.toString(16)}`)
  t.same(brakes.check(acct('new@example.org'), '2001:db8:1:2:ffff:ffff:ffff:ffff'), { action: 'refuse', scope: 'ip' }, 'another address of the /64')
  t.same(brakes.check(acct('new@example.org'), '2001:DB8:0001:0002:0:0:0:99'), { action: 'refuse', scope: 'ip' }, 'written differently')
  t.same(brakes.check(acct('new@example.org'), '2001:db8:1:3::1'), { action: 'pass' }, 'the next /64 is another client')

  const wide = setup({ ipv6Prefix: 48 }).brakes
  for (let i = 1; i <= 8; i++) wide.failure(acct(`user${i}@example.org`), `2001:db8:1:${i.toString(16)}::1`)
  t.same(wide.check(acct('new@example.org'), '2001:db8:1:ffff::1'), { action: 'refuse', scope: 'ip' }, 'login.brakes.ipv6Prefix 48: one key per /48')
  wide.reconfigure({ windowMs: 60_000, ip: { tarpitAfter: 4, refuseAfter: 8 }, account: { tarpitAfter: 2, refuseAfter: 4 }, tarpitMs: 1000, maxTarpitMs: 8000, ipv6Prefix: 128 })
  t.same(wide.check(acct('new@example.org'), '2001:db8:1:ffff::1'), { action: 'pass' }, 'a reload to /128 counts single addresses')
})

t.test('an address that is not an IP counts as no address: never clean, never its own fresh client', async (t) => {
  const { brakes } = setup()
  for (let i = 0; i < 4; i++) brakes.failure(acct('alice@example.org'), `198.51.100.${i}`)
  for (const bad of ['198.51.100.7 ', 'fe80::1%eth0', '2001:db8::1/64', 'unknown', '']) {
    t.equal(brakes.check(acct('alice@example.org'), bad).action, 'refuse', `${JSON.stringify(bad)}: the account's count applies`)
  }
  t.same(brakes.check(acct('alice@example.org'), '203.0.113.5'), { action: 'pass' }, 'a real clean address still passes')
})

t.test('names that are no account are counted in their own room and cannot flush real accounts', async (t) => {
  const { brakes } = setup({ maxKeys: 10 })
  for (let i = 0; i < 4; i++) brakes.failure(acct('alice@example.org'), '192.0.2.1')
  t.equal(brakes.check(acct('alice@example.org'), '192.0.2.1').action, 'refuse')
  // Far more made-up names than a room holds (from one address: this is about names, not IPs).
  for (let i = 0; i < 1000; i++) brakes.failure(unknown(`nobody${i}@example.org`), '198.51.100.99')
  t.same(brakes.check(acct('alice@example.org'), '192.0.2.1'), { action: 'refuse', scope: 'account' }, "alice's failures are still counted")

  // An unknown name is braked like an account (or the brakes would tell which names exist).
  for (let i = 0; i < 4; i++) brakes.failure(unknown('ghost@example.org'), '192.0.2.2')
  t.same(brakes.check(unknown('ghost@example.org'), '192.0.2.2'), { action: 'refuse', scope: 'account' })
  t.same(brakes.check(unknown('ghost@example.org'), '203.0.113.5'), { action: 'pass' }, 'and not from a clean address')
  t.same(brakes.check(acct('ghost@example.org'), '192.0.2.2'), { action: 'tarpit', seconds: 1, scope: 'ip' }, 'an account of that name: only the IP counts (a room apart)')
})

t.test('an account the directory could not name: judged as if at its limit, counted against the IP only', async (t) => {
  const { brakes } = setup()
  t.same(brakes.check(undefined, '203.0.113.5'), { action: 'pass' }, 'a clean address is never braked by an account count')
  brakes.failure(undefined, '192.0.2.3')
  t.same(brakes.check(undefined, '192.0.2.3'), { action: 'refuse', scope: 'account' }, 'an address that failed is refused while the account cannot be told')
  t.same(brakes.check(acct('alice@example.org'), '192.0.2.3'), { action: 'pass' }, 'the failure counted on no account')
  t.same(brakes.check(undefined, undefined), { action: 'refuse', scope: 'account' }, 'no address: never clean')
  brakes.success(undefined, '192.0.2.3')
  t.equal(brakes.check(acct('alice@example.org'), '192.0.2.3').action, 'pass', 'a success on no account forgets nothing and breaks nothing')
})
