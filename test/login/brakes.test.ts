import t from 'tap'
import { Brakes } from '../../src/auth/brakes.js'

function setup() {
  let now = 1_000_000
  const brakes = new Brakes({
    windowMs: 60_000,
    ip: { tarpitAfter: 4, refuseAfter: 8 },
    account: { tarpitAfter: 2, refuseAfter: 4 },
    tarpitMs: 1000,
    maxTarpitMs: 8000,
    now: () => now,
  })
  return { brakes, advance: (ms: number) => (now += ms) }
}

t.test('an attacker IP on one account: tarpit after N failures, refuse later', async (t) => {
  const { brakes } = setup()
  const seen: string[] = []
  for (let i = 0; i < 6; i++) {
    const v = brakes.check('alice@example.org', '192.0.2.66')
    seen.push(v.action === 'tarpit' ? `tarpit ${v.seconds}s` : v.action)
    if (v.action !== 'refuse') brakes.failure('alice@example.org', '192.0.2.66')
  }
  t.same(seen, ['pass', 'pass', 'tarpit 1s', 'tarpit 2s', 'refuse', 'refuse'])
})

t.test('the owner on a clean IP is never braked by the account count', async (t) => {
  const { brakes } = setup()
  for (let i = 0; i < 10; i++) brakes.failure('alice@example.org', `198.51.100.${i}`)
  t.same(brakes.check('alice@example.org', '203.0.113.5'), { action: 'pass' }, 'clean IP passes')
  t.equal(brakes.check('alice@example.org', '198.51.100.1').action, 'refuse', 'an IP that failed is refused on that account')
  t.equal(brakes.check('alice@example.org', undefined).action, 'refuse', 'no IP known: never clean')
  t.same(brakes.check('bob@example.org', '198.51.100.1'), { action: 'pass' }, 'the same IP on another account, below IP thresholds')
})

t.test('per-IP limits apply across accounts; tarpit doubles up to the cap', async (t) => {
  const { brakes } = setup()
  for (let i = 0; i < 7; i++) brakes.failure(`user${i}@example.org`, '192.0.2.9')
  t.same(brakes.check('new@example.org', '192.0.2.9'), { action: 'tarpit', seconds: 8, scope: 'ip' })
  brakes.failure('new@example.org', '192.0.2.9')
  t.same(brakes.check('other@example.org', '192.0.2.9'), { action: 'refuse', scope: 'ip' })
})

t.test('failures expire with the window; success forgets that IP on that account', async (t) => {
  const { brakes, advance } = setup()
  for (let i = 0; i < 4; i++) brakes.failure('alice@example.org', '192.0.2.1')
  t.equal(brakes.check('alice@example.org', '192.0.2.1').action, 'refuse')
  advance(60_001)
  t.same(brakes.check('alice@example.org', '192.0.2.1'), { action: 'pass' })
  for (let i = 0; i < 3; i++) brakes.failure('alice@example.org', '192.0.2.1')
  brakes.success('alice@example.org', '192.0.2.1')
  t.same(brakes.check('alice@example.org', '192.0.2.1'), { action: 'pass' }, 'after a success')
})
