// One lookup deadline bounds a pooled login, not one per step (docs/pools.md, architecture §2):
// the login router's password check and a pooled user's pin claim get what the steps before
// them left of it, and so does nginx's SMTP routing. The pin store here is a slow fake behind
// the real PinLedger: a claim it answers too late is a temporary failure in time, never a guess,
// and the pin it answers afterwards is the one later logins get.

import t from 'tap'
import { Brakes } from '../../src/auth/brakes.js'
import { validateConfig } from '../../src/config/load.js'
import { nginxAuth } from '../../src/http/nginx-auth.js'
import { silentLogger } from '../../src/log.js'
import { LoginRouter } from '../../src/login/router.js'
import { PinLedger } from '../../src/pools/pin-ledger.js'
import { decide, settlePins } from '../../src/resolve/destination.js'
import { Registry, type PoolInfo, type PoolMember } from '../../src/resolve/registry.js'
import type { Queryable } from '../../src/store/store.js'
import { lookupStack } from '../fakes/lookup-stack.js'
import { MemoryDirectory } from '../fakes/memory-directory.js'
import { MemoryPins } from '../fakes/memory-pins.js'
import { until } from '../harness/until.js'

const DEADLINE = 1000
/** What a loaded machine may add to a bounded wait before the answer comes. */
const SLACK = 500
const PORTS = { lmtp: 24, smtp: 25, imap: 143, pop3: 110 }
const member = (id: string, address: string): PoolMember => ({ kind: 'member', id, pool: 'pool1', address, route: 'lmtp', ports: PORTS, weight: 1 })
const POOL: PoolInfo = { kind: 'pool', id: 'pool1', mailHosts: ['pool1.example.org'], route: 'lmtp', ports: PORTS, members: [member('m1', '10.0.1.1'), member('m2', '10.0.1.2')], pinForMs: 60_000 }
const ALICE = 'alice@example.org'
const LOGIN = { user: ALICE, password: 'wonderland', service: 'imap', remoteIp: '192.0.2.1' }

/**
 * A pin store that answers every claim after `delayMs` (pinning the instance's choice, as the real
 * statement does for a user without a pin). Counts the claims it answered.
 */
function slowPinStore(delayMs: number) {
  const s = { delayMs, answered: 0, db: undefined as unknown as Queryable }
  s.db = {
    query<R>(_sql: string, params?: readonly unknown[]) {
      return new Promise<{ rows: R[] }>((resolve) =>
        setTimeout(() => {
          s.answered++
          resolve({ rows: [{ member_id: params?.[2], explicit: false } as R] })
        }, s.delayMs),
      )
    },
  }
  return s
}

/** The router on a pool whose pins come from `store` through the real ledger; the claims' time limits as asked. */
function setup(store: Queryable) {
  const pins = new PinLedger({ store, logger: silentLogger, refreshIntervalMs: 1000, claimTimeoutMs: DEADLINE })
  const given: number[] = []
  const claim = pins.claim.bind(pins)
  pins.claim = (address, pool, registry, timeoutMs) => (given.push(timeoutMs ?? Number.NaN), claim(address, pool, registry, timeoutMs))
  const registry = new Registry([{ name: 'example.org' }], [POOL], [], new Map(), pins)
  const dir = new MemoryDirectory().account('alice', [ALICE], 'pool1').withPasswords({ alice: 'wonderland' })
  const { lookups } = lookupStack(dir, { registry, deadlineMs: DEADLINE })
  const brakes = new Brakes({ windowMs: 60_000, ip: { tarpitAfter: 10, refuseAfter: 20 }, account: { tarpitAfter: 5, refuseAfter: 9 }, tarpitMs: 1000, maxTarpitMs: 4000 })
  const router = new LoginRouter({ resolver: lookups, registry: () => registry, directory: dir, brakes, config: { proxyField: 'proxy', lookupMode: false }, deadlineMs: DEADLINE, logger: silentLogger })
  return { pins, given, registry, dir, lookups, router }
}

async function timed<T>(work: Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now()
  const value = await work
  return { value, ms: performance.now() - started }
}

t.test('a slow password check and a slower pin store: a temporary failure within the one deadline', async (t) => {
  const store = slowPinStore(3 * DEADLINE)
  const { pins, given, dir, lookups, router } = setup(store.db)
  await lookups.resolve(ALICE, 'test') // cached: the resolution costs nothing below
  dir.delayMs = 600
  const { value, ms } = await timed(router.verify(LOGIN, 'test'))
  t.match(value, { result: 'tempfail', reason: 'backend unavailable (pool pins unavailable)' }, 'the login fails temporarily, never unknown or a member by hash')
  t.ok(ms < DEADLINE + SLACK, `answered in ${Math.round(ms)} ms, within the deadline (each step its own deadline: ${600 + DEADLINE} ms)`)
  t.equal(given.length, 1, 'one claim')
  t.ok(given[0]! > 0 && given[0]! <= DEADLINE - 600 + 50, `the claim gets what the password check left: ${Math.round(given[0]!)} ms`)

  // The claim goes on in the store; the pin it lands is the one the next login gets.
  await until('the claim to land', 3 * DEADLINE + 5000, () => (store.answered > 0 && pins.size > 0 ? true : undefined))
  dir.delayMs = 0
  t.match(await router.verify(LOGIN, 'test'), { result: 'ok', host: /^10\.0\.1\.[12]$/, port: 143 }, 'the landed pin routes the retry')
  t.equal(given.length, 1, 'without another claim')
})

t.test('a pin store within what is left: the login goes to the member it pins', async (t) => {
  const { given, dir, lookups, router } = setup(slowPinStore(100).db)
  await lookups.resolve(ALICE, 'test')
  dir.delayMs = 300
  const { value, ms } = await timed(router.verify(LOGIN, 'test'))
  t.match(value, { result: 'ok', host: /^10\.0\.1\.[12]$/, port: 143 })
  t.ok(ms < DEADLINE + SLACK, `${Math.round(ms)} ms`)
  t.ok(given[0]! <= DEADLINE - 300 + 50, `the claim had ${Math.round(given[0]!)} ms`)
})

t.test('a slow resolution leaves the password check only the rest: a temporary failure in time', async (t) => {
  const { given, dir, router } = setup(slowPinStore(0).db)
  dir.delayMs = 600 // the resolution misses the cache, and the check is as slow
  const { value, ms } = await timed(router.verify(LOGIN, 'test'))
  t.match(value, { result: 'tempfail', reason: 'directory unavailable' }, 'never a wrong password')
  t.ok(ms < DEADLINE + SLACK, `answered in ${Math.round(ms)} ms (each step its own deadline: 1200 ms and a route)`)
  t.same(given, [], 'no claim for a login that was not checked')
})

t.test('route() (dict, lookup mode): a slow resolution leaves the claim only the rest', async (t) => {
  const { given, dir, router } = setup(slowPinStore(3 * DEADLINE).db)
  dir.delayMs = 600 // the resolution misses the cache
  const { value, ms } = await timed(router.route({ user: ALICE, service: 'imap' }, 'test'))
  t.match(value, { result: 'tempfail', reason: 'backend unavailable (pool pins unavailable)' })
  t.ok(ms < DEADLINE + SLACK, `answered in ${Math.round(ms)} ms`)
  t.ok(given[0]! <= DEADLINE - 600 + 50, `the claim had ${Math.round(given[0]!)} ms`)
})

t.test('nginx smtp_auth none: the resolution and the claim share one deadline', async (t) => {
  const { given, dir, registry, lookups, router } = setup(slowPinStore(3 * DEADLINE).db)
  const config = validateConfig({ login: { secret: 's', nginx: { maxAttempts: 3, wait: '2s' } } }).login
  dir.delayMs = 600
  const headers = { 'auth-method': 'none', 'auth-protocol': 'smtp', 'auth-user': '', 'auth-pass': '', 'auth-login-attempt': '1', 'client-ip': '192.0.2.1', 'auth-smtp-to': `RCPT TO:<${ALICE}>` }
  const { value, ms } = await timed(nginxAuth(headers, { router, resolver: lookups, registry: () => registry, config }))
  t.same(value.headers, { 'Auth-Status': 'Temporary lookup failure, try again later', 'Auth-Wait': '2', 'Auth-Error-Code': '451 4.3.0' }, 'a temporary failure, not "mailbox unknown"')
  t.ok(ms < DEADLINE + SLACK, `answered in ${Math.round(ms)} ms`)
  t.ok(given[0]! <= DEADLINE - 600 + 50, `the claim had ${Math.round(given[0]!)} ms`)
})

t.test('settlePins with no time left claims nothing; decide() answers a temporary failure', async (t) => {
  const pins = new MemoryPins()
  const registry = new Registry([{ name: 'example.org' }], [POOL], [], new Map(), pins)
  const alice = { address: ALICE, mailHost: 'pool1.example.org' }
  await settlePins([alice], registry, 0)
  await settlePins([alice], registry, -5)
  t.same(pins.claims, [], 'no claim started')
  t.match(decide(alice, { service: 'imap' }, registry), { kind: 'unavailable', reason: 'unpinned' })
  t.match(decide(alice, { service: 'nginx-smtp' }, registry), { kind: 'unavailable', reason: 'unpinned' })
  pins.pin(ALICE, 'm2')
  await settlePins([alice], registry, 0)
  t.match(decide(alice, { service: 'imap' }, registry), { kind: 'destination', address: '10.0.1.2' }, 'a pin held here needs no time')
})
