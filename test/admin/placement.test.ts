import fc from 'fast-check'
import t from 'tap'
import { PLACEMENT_POLICIES, type PlacementPolicy } from '../../src/config/schema.js'
import type { AdminState } from '../../src/resolve/registry.js'
import { exclusionOf, place, type Candidate, type Placement, type PlacementRequest } from '../../src/admin/placement.js'

const backend = (id: string, over: Partial<Candidate> = {}): Candidate => ({
  id,
  weight: 1,
  capacity: null,
  accounts: 0,
  adminState: 'active',
  healthy: true,
  ...over,
})

/** mulberry32: a tiny seeded PRNG, so the distribution tests give the same counts on every run. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** A random() that replays `values` cyclically and counts its calls. */
function replay(values: readonly number[]): { random: () => number; calls: () => number } {
  let n = 0
  return { random: () => values[n++ % values.length]!, calls: () => n }
}

const constant = (v: number) => () => v

interface Run {
  readonly results: Placement[]
  readonly counts: Record<string, number>
  /** Ids that were ever given an account while at or over their capacity. */
  readonly overCapacity: string[]
}

/**
 * Places `n` accounts one after the other, adding each to its backend's count as provisioning
 * does, so least-used and capacity see the effect of earlier placements. `before` may change a
 * candidate's state between placements (drain it, mark it down).
 */
function simulate(
  policy: PlacementPolicy,
  start: readonly Candidate[],
  n: number,
  random: () => number,
  opts: { affinity?: string; before?: (step: number, cs: Candidate[]) => void } = {},
): Run {
  const cs = [...start]
  const counts: Record<string, number> = Object.fromEntries(cs.map((c) => [c.id, 0]))
  const results: Placement[] = []
  const overCapacity = new Set<string>()
  for (let step = 0; step < n; step++) {
    opts.before?.(step, cs)
    const r = place({ policy, candidates: cs, random, ...(opts.affinity === undefined ? {} : { affinity: opts.affinity }) })
    results.push(r)
    if (!r.ok) continue
    const i = cs.findIndex((c) => c.id === r.backend)
    const c = cs[i]!
    if (c.capacity !== null && c.accounts >= c.capacity) overCapacity.add(c.id)
    cs[i] = { ...c, accounts: c.accounts + 1 }
    counts[c.id] = (counts[c.id] ?? 0) + 1
  }
  return { results, counts, overCapacity: [...overCapacity] }
}

/** Binomial standard deviation of the count of n draws with probability p. */
const sigma = (n: number, p: number) => Math.sqrt(n * p * (1 - p))

// Distribution tolerance: ±5 binomial standard deviations around the expected count. For a fair
// generator a count falls outside that with probability ~6e-7, so a seed that passes is not a
// lucky one, and a later change to how random() values map to backends (which reshuffles the
// sequence) still passes; a real bias (a backend skipped, weights ignored, off-by-one in the
// index) moves a count by far more than that at n = 1000.
const SIGMAS = 5
const N = 1000

t.test('exclusionOf: one reason, in the order maintenance, drain, down, full', async (t) => {
  t.equal(exclusionOf(backend('a')), undefined)
  t.equal(exclusionOf(backend('a', { adminState: 'maintenance', healthy: false, capacity: 0 })), 'maintenance')
  t.equal(exclusionOf(backend('a', { adminState: 'drain', healthy: false, capacity: 0 })), 'drain')
  t.equal(exclusionOf(backend('a', { healthy: false, capacity: 0 })), 'down')
  t.equal(exclusionOf(backend('a', { capacity: 5, accounts: 5 })), 'full')
  t.equal(exclusionOf(backend('a', { capacity: 5, accounts: 7 })), 'full', 'over capacity (capacity lowered later)')
  t.equal(exclusionOf(backend('a', { capacity: 5, accounts: 4 })), undefined)
  t.equal(exclusionOf(backend('a', { capacity: 0 })), 'full')
  t.equal(exclusionOf(backend('a', { capacity: -3, accounts: -10 })), 'full', 'zero or negative capacity is full whatever the count')
  t.equal(exclusionOf(backend('a', { accounts: 1e9 })), undefined, 'null capacity is unlimited')
  t.equal(exclusionOf(backend('a', { weight: 0 })), undefined, 'weight only matters to the weighted policy')
})

t.test('nothing eligible: a reason naming each backend and why', async (t) => {
  const cs = [
    backend('mx1', { adminState: 'drain' }),
    backend('mx2', { capacity: 3, accounts: 3 }),
    backend('mx3', { healthy: false }),
    backend('mx4', { adminState: 'maintenance' }),
  ]
  for (const policy of PLACEMENT_POLICIES) {
    t.same(
      place({ policy, candidates: cs, affinity: 'mx1', random: constant(0) }),
      {
        ok: false,
        reason: 'no eligible backend: mx1 drain, mx2 full, mx3 down, mx4 maintenance',
        excluded: [
          { id: 'mx1', reason: 'drain' },
          { id: 'mx2', reason: 'full' },
          { id: 'mx3', reason: 'down' },
          { id: 'mx4', reason: 'maintenance' },
        ],
      },
      policy,
    )
  }
  t.same(place({ policy: 'random', candidates: [], random: constant(0) }), { ok: false, reason: 'no eligible backend: no backends registered', excluded: [] })
  t.same(
    place({ policy: 'weighted', candidates: [backend('mx1', { weight: 0 }), backend('mx2', { adminState: 'drain', weight: 5 }), backend('mx3', { weight: 0 })], random: constant(0) }),
    { ok: false, reason: 'no eligible backend with a weight above 0: mx1 weight 0, mx2 drain, mx3 weight 0', excluded: [{ id: 'mx2', reason: 'drain' }] },
  )
  const odd = place({ policy: 'sticky' as PlacementPolicy, candidates: [backend('mx1')], random: constant(0) })
  t.same(odd, { ok: false, reason: 'unknown placement policy "sticky"', excluded: [] }, 'an untyped caller gets an answer, not a throw')
})

t.test('random: index from random(), clamped when random() misbehaves', async (t) => {
  const cs = [backend('mx1'), backend('mx2', { adminState: 'drain' }), backend('mx3'), backend('mx4')]
  const at = (v: number) => place({ policy: 'random', candidates: cs, random: constant(v) })
  t.match(at(0), { ok: true, backend: 'mx1', applied: 'random', eligible: ['mx1', 'mx3', 'mx4'], excluded: [{ id: 'mx2', reason: 'drain' }] })
  t.match(at(0.34), { backend: 'mx3' })
  t.match(at(0.999999), { backend: 'mx4' })
  t.match(at(1), { backend: 'mx4' })
  t.match(at(-0.5), { backend: 'mx1' })
  t.match(at(NaN), { backend: 'mx1' })
  t.match(at(Infinity), { backend: 'mx4' })
})

t.test('weighted: cumulative weights over eligible backends, zero weights skipped', async (t) => {
  const cs = [backend('mx1', { weight: 1 }), backend('mx2', { weight: 0 }), backend('mx3', { weight: 3 }), backend('mx4', { weight: 9, healthy: false })]
  const at = (v: number) => place({ policy: 'weighted', candidates: cs, random: constant(v) })
  t.match(at(0), { ok: true, backend: 'mx1', applied: 'weighted', eligible: ['mx1', 'mx2', 'mx3'], excluded: [{ id: 'mx4', reason: 'down' }] })
  t.match(at(0.2499), { backend: 'mx1' })
  t.match(at(0.26), { backend: 'mx3' })
  t.match(at(0.9999), { backend: 'mx3' })
  t.match(at(1), { backend: 'mx3' })
  t.match(at(NaN), { backend: 'mx3' })
  const huge = [backend('a', { weight: Number.MAX_VALUE }), backend('b', { weight: Number.MAX_VALUE })]
  t.match(place({ policy: 'weighted', candidates: huge, random: constant(0.75) }), { backend: 'b' }, 'weights that would sum to Infinity are scaled')
  const inf = [backend('a', { weight: 1e300 }), backend('b', { weight: Infinity }), backend('c', { weight: Infinity })]
  t.match(place({ policy: 'weighted', candidates: inf, random: constant(0) }), { backend: 'b' }, 'infinite weights outweigh finite ones')
  t.match(place({ policy: 'weighted', candidates: inf, random: constant(0.9) }), { backend: 'c' })
})

t.test('least-used: raw counts unless every eligible backend has a capacity; ties picked at random', async (t) => {
  const raw = [backend('mx1', { accounts: 5 }), backend('mx2', { accounts: 3, capacity: 4 }), backend('mx3', { accounts: 3 }), backend('mx4', { accounts: 0, adminState: 'drain' })]
  t.match(place({ policy: 'least-used', candidates: raw, random: constant(0) }), { ok: true, backend: 'mx2', applied: 'least-used' })
  t.match(place({ policy: 'least-used', candidates: raw, random: constant(0.5) }), { backend: 'mx3' })
  const ratio = [backend('mx1', { accounts: 30, capacity: 100 }), backend('mx2', { accounts: 20, capacity: 40 }), backend('mx3', { accounts: 31, capacity: 100 })]
  t.match(place({ policy: 'least-used', candidates: ratio, random: constant(0.99) }), { backend: 'mx1' }, '0.30 beats 0.50 and 0.31, though mx2 has fewer accounts')
  const equalRatio = [backend('mx1', { accounts: 1, capacity: 3 }), backend('mx2', { accounts: 2, capacity: 6 }), backend('mx3', { accounts: 5, capacity: 15 })]
  t.match(place({ policy: 'least-used', candidates: equalRatio, random: constant(0.99) }), { backend: 'mx3' }, 'equal ratios tie exactly')
  const r = replay([0.5])
  t.match(place({ policy: 'least-used', candidates: ratio, random: r.random }), { backend: 'mx1' })
  t.equal(r.calls(), 0, 'a single least-used backend consumes no random number')
})

t.test('domain: the affinity backend while it is eligible, else least-used', async (t) => {
  const cs = [backend('mx1', { accounts: 9 }), backend('mx2', { accounts: 50 }), backend('mx3', { accounts: 7, capacity: 7 }), backend('mx4', { accounts: 8, adminState: 'drain' })]
  const r = replay([0.9])
  t.match(place({ policy: 'domain', candidates: cs, affinity: 'mx2', random: r.random }), { ok: true, backend: 'mx2', applied: 'domain' })
  t.equal(r.calls(), 0, 'affinity consumes no random number')
  for (const affinity of ['mx3', 'mx4', 'mx9', undefined]) {
    t.match(
      place({ policy: 'domain', candidates: cs, random: constant(0), ...(affinity === undefined ? {} : { affinity }) }),
      { ok: true, backend: 'mx1', applied: 'least-used', eligible: ['mx1', 'mx2'] },
      `affinity ${String(affinity)}`,
    )
  }
})

// ---- properties over arbitrary candidate sets ----

const candidateArb = fc.record({
  id: fc.constantFrom('mx1', 'mx2', 'mx3', 'mx4', 'mx5', 'mx6', 'mx7', 'mx8'),
  weight: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 10 }), fc.double({ noNaN: true })),
  capacity: fc.option(fc.integer({ min: -2, max: 30 }), { nil: null }),
  accounts: fc.nat(30),
  adminState: fc.constantFrom<AdminState>('active', 'active', 'drain', 'maintenance'),
  healthy: fc.oneof(fc.constant(true), fc.boolean()),
})
const candidatesArb = fc.uniqueArray(candidateArb, { selector: (c) => c.id, maxLength: 8 })
const requestArb = fc.record({
  policy: fc.constantFrom(...PLACEMENT_POLICIES),
  candidates: candidatesArb,
  affinity: fc.option(fc.constantFrom('mx1', 'mx2', 'mx3', 'elsewhere'), { nil: undefined }),
  randoms: fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 1, maxLength: 4 }),
})

type ArbRequest = typeof requestArb extends fc.Arbitrary<infer R> ? R : never
const request = (a: ArbRequest, random: () => number): PlacementRequest => ({
  policy: a.policy,
  candidates: a.candidates,
  random,
  ...(a.affinity === undefined ? {} : { affinity: a.affinity }),
})

/** The test's own statement of the least-used rule, to compare place() against. */
function lowestFill(eligible: readonly Candidate[]): number {
  const allCapped = eligible.every((c) => c.capacity !== null)
  return Math.min(...eligible.map((c) => (allCapped ? c.accounts / c.capacity! : c.accounts)))
}

t.test('property: never an excluded backend; eligible and excluded listed in input order', async () => {
  fc.assert(
    fc.property(requestArb, (a) => {
      const r = place(request(a, replay(a.randoms).random))
      const eligible = a.candidates.filter((c) => exclusionOf(c) === undefined)
      const excluded = a.candidates.flatMap((c) => {
        const reason = exclusionOf(c)
        return reason === undefined ? [] : [{ id: c.id, reason }]
      })
      if (JSON.stringify(r.excluded) !== JSON.stringify(excluded)) return false
      if (!r.ok) return r.reason.length > 0
      const chosen = a.candidates.find((c) => c.id === r.backend)
      return (
        chosen !== undefined &&
        chosen.adminState === 'active' &&
        chosen.healthy &&
        (chosen.capacity === null || chosen.accounts < chosen.capacity) &&
        JSON.stringify(r.eligible) === JSON.stringify(eligible.map((c) => c.id))
      )
    }),
    { numRuns: 3000 },
  )
})

t.test('property: ok:false exactly when nothing is eligible (or, for weighted, nothing eligible weighs more than 0)', async () => {
  fc.assert(
    fc.property(requestArb, (a) => {
      const eligible = a.candidates.filter((c) => exclusionOf(c) === undefined)
      const impossible = eligible.length === 0 || (a.policy === 'weighted' && eligible.every((c) => !(c.weight > 0)))
      return place(request(a, replay(a.randoms).random)).ok === !impossible
    }),
    { numRuns: 3000 },
  )
})

t.test('property: each policy keeps its promise', async () => {
  fc.assert(
    fc.property(requestArb, (a) => {
      const r = place(request(a, replay(a.randoms).random))
      if (!r.ok) return true
      const eligible = a.candidates.filter((c) => exclusionOf(c) === undefined)
      const chosen = eligible.find((c) => c.id === r.backend)!
      const affinityEligible = a.affinity !== undefined && eligible.some((c) => c.id === a.affinity)
      const allCapped = eligible.every((c) => c.capacity !== null)
      const isLeastUsed = (allCapped ? chosen.accounts / chosen.capacity! : chosen.accounts) === lowestFill(eligible)
      switch (a.policy) {
        case 'random':
          return r.applied === 'random'
        case 'weighted':
          return r.applied === 'weighted' && chosen.weight > 0
        case 'least-used':
          return r.applied === 'least-used' && isLeastUsed
        case 'domain':
          if (affinityEligible) return r.applied === 'domain' && r.backend === a.affinity
          return r.applied === 'least-used' && isLeastUsed
      }
    }),
    { numRuns: 3000 },
  )
})

t.test('property: deterministic, at most one random number, none when the choice is forced', async () => {
  fc.assert(
    fc.property(requestArb, (a) => {
      const first = replay(a.randoms)
      const second = replay(a.randoms)
      const r1 = place(request(a, first.random))
      const r2 = place(request(a, second.random))
      if (JSON.stringify(r1) !== JSON.stringify(r2) || first.calls() > 1) return false
      if (!r1.ok) return first.calls() === 0
      const eligible = a.candidates.filter((c) => exclusionOf(c) === undefined)
      const forced =
        eligible.length === 1 ||
        (a.policy === 'weighted' && eligible.filter((c) => c.weight > 0).length === 1) ||
        (a.policy === 'domain' && r1.applied === 'domain')
      return !forced || first.calls() === 0
    }),
    { numRuns: 3000 },
  )
})

t.test('property: never throws, never picks an excluded backend, whatever random() returns', async () => {
  fc.assert(
    fc.property(requestArb, fc.array(fc.double(), { minLength: 1, maxLength: 4 }), (a, wild) => {
      const r = place(request(a, replay(wild).random))
      return !r.ok || a.candidates.some((c) => c.id === r.backend && exclusionOf(c) === undefined)
    }),
    { numRuns: 3000 },
  )
})

// ---- distributions over 1000 placements ----

t.test('distribution: random is uniform over eligible backends', async (t) => {
  const cs = [backend('mx1'), backend('mx2'), backend('mx3', { adminState: 'drain' }), backend('mx4', { accounts: 500 }), backend('mx5', { healthy: false }), backend('mx6', { weight: 0 })]
  for (const seed of [1, 2, 3]) {
    const run = simulate('random', cs, N, mulberry32(seed))
    const tol = SIGMAS * sigma(N, 1 / 4) // 4 eligible: 250 ± 68
    for (const id of ['mx1', 'mx2', 'mx4', 'mx6']) t.ok(Math.abs(run.counts[id]! - N / 4) <= tol, `seed ${seed}: ${id} got ${run.counts[id]}, expected 250 ± ${tol.toFixed(0)}`)
    t.equal(run.counts.mx3, 0)
    t.equal(run.counts.mx5, 0)
  }
})

t.test('distribution: weighted shares follow the weights', async (t) => {
  const weights: Record<string, number> = { mx1: 1, mx2: 2, mx3: 3, mx4: 4, mx5: 0 }
  const cs = [...Object.entries(weights).map(([id, weight]) => backend(id, { weight })), backend('mx6', { weight: 50, adminState: 'maintenance' })]
  for (const seed of [1, 2, 3]) {
    const run = simulate('weighted', cs, N, mulberry32(seed))
    for (const [id, w] of Object.entries(weights)) {
      const p = w / 10
      const tol = SIGMAS * sigma(N, p) // 100 ± 47, 200 ± 63, 300 ± 72, 400 ± 77
      t.ok(Math.abs(run.counts[id]! - N * p) <= tol, `seed ${seed}: ${id} (weight ${w}) got ${run.counts[id]}, expected ${N * p} ± ${tol.toFixed(0)}`)
    }
    t.equal(run.counts.mx6, 0)
  }
})

t.test('distribution: least-used without capacities ends with counts at most 1 apart, ties spread', async (t) => {
  const even = simulate('least-used', [backend('mx1'), backend('mx2'), backend('mx3'), backend('mx4', { adminState: 'drain' })], N, mulberry32(7))
  const counts = ['mx1', 'mx2', 'mx3'].map((id) => even.counts[id]!)
  t.ok(Math.max(...counts) - Math.min(...counts) <= 1, `final counts ${counts.join(', ')}`)
  t.equal(even.counts.mx4, 0)

  // Every third placement starts a round with all three equal; who gets it is the tie-break.
  // 333 such rounds, 111 each expected, ±5 sigma.
  const roundStarts = even.results.filter((_, i) => i % 3 === 0).map((r) => (r.ok ? r.backend : ''))
  const tol = SIGMAS * sigma(roundStarts.length, 1 / 3)
  for (const id of ['mx1', 'mx2', 'mx3']) {
    const got = roundStarts.filter((b) => b === id).length
    t.ok(Math.abs(got - roundStarts.length / 3) <= tol, `${id} won ${got} of ${roundStarts.length} ties, expected ${(roundStarts.length / 3).toFixed(0)} ± ${tol.toFixed(0)}`)
  }

  const uneven = simulate('least-used', [backend('mx1', { accounts: 400 }), backend('mx2'), backend('mx3', { accounts: 50 })], N, mulberry32(8))
  const finals = [400 + uneven.counts.mx1!, uneven.counts.mx2!, 50 + uneven.counts.mx3!]
  t.ok(Math.max(...finals) - Math.min(...finals) <= 1, `fills the emptiest first: final counts ${finals.join(', ')}`)
})

t.test('distribution: least-used with capacities levels fill ratios to within one account', async (t) => {
  const caps: Record<string, number> = { mx1: 200, mx2: 400, mx3: 800 }
  const run = simulate('least-used', Object.entries(caps).map(([id, capacity]) => backend(id, { capacity })), N, mulberry32(9))
  const ids = Object.keys(caps)
  for (const i of ids) {
    for (const j of ids) {
      const gap = run.counts[i]! / caps[i]! - run.counts[j]! / caps[j]!
      // The backend with the higher ratio was at or below the other's when it got its last
      // account, so it leads by at most that one account's share of its own capacity.
      t.ok(gap <= 1 / caps[i]! + 1e-12, `${i} ${run.counts[i]}/${caps[i]} vs ${j} ${run.counts[j]}/${caps[j]}`)
    }
  }
  t.same(run.overCapacity, [])

  // One unlimited backend: ratios are not comparable with it, so raw counts decide.
  const mixed = simulate('least-used', [backend('mx1', { capacity: 100 }), backend('mx2'), backend('mx3')], N, mulberry32(10))
  t.equal(mixed.counts.mx1, 100, 'the capped backend takes its even share until full')
  t.ok(Math.abs(mixed.counts.mx2! - mixed.counts.mx3!) <= 1, `then the others: ${mixed.counts.mx2}, ${mixed.counts.mx3}`)
  t.same(mixed.overCapacity, [])
})

t.test('distribution: domain stays on the affinity backend while eligible, then falls back', async (t) => {
  const cs = [backend('mx1'), backend('mx2', { capacity: 10 }), backend('mx3'), backend('mx4', { adminState: 'drain' })]
  const run = simulate('domain', cs, N, mulberry32(11), { affinity: 'mx2' })
  t.equal(run.counts.mx2, 10)
  t.ok(run.results.slice(0, 10).every((r) => r.ok && r.backend === 'mx2' && r.applied === 'domain'), 'the first 10 go to the affinity backend')
  t.ok(run.results.slice(10).every((r) => r.ok && r.backend !== 'mx2' && r.applied === 'least-used'), 'the rest are placed least-used')
  t.ok(Math.abs(run.counts.mx1! - run.counts.mx3!) <= 1, `least-used after the fallback: ${run.counts.mx1}, ${run.counts.mx3}`)
  t.equal(run.counts.mx4, 0)
  t.same(run.overCapacity, [])

  const drained = simulate('domain', [backend('mx1'), backend('mx2'), backend('mx3')], N, mulberry32(12), {
    affinity: 'mx1',
    before: (step, c) => {
      if (step === 300) c[0] = { ...c[0]!, adminState: 'drain' }
      if (step === 600) c[0] = { ...c[0]!, adminState: 'active', healthy: false }
    },
  })
  t.equal(drained.counts.mx1, 300, 'nothing more once drained, nor once down')
  t.ok(Math.abs(drained.counts.mx2! - drained.counts.mx3!) <= 1, `${drained.counts.mx2}, ${drained.counts.mx3}`)
  t.match(drained.results[300], { ok: true, applied: 'least-used', excluded: [{ id: 'mx1', reason: 'drain' }] })
  t.match(drained.results[600], { ok: true, applied: 'least-used', excluded: [{ id: 'mx1', reason: 'down' }] })
})

t.test('capacity is never exceeded, by any policy, and a full cluster says so', async (t) => {
  const cs = [backend('mx1', { capacity: 50, weight: 10 }), backend('mx2', { capacity: 200, weight: 1 }), backend('mx3', { capacity: 300, accounts: 290, weight: 1 })]
  for (const policy of PLACEMENT_POLICIES) {
    const run = simulate(policy, cs, N, mulberry32(13), { affinity: 'mx1' })
    t.same(run.overCapacity, [], policy)
    t.same(run.counts, { mx1: 50, mx2: 200, mx3: 10 }, `${policy}: every backend filled exactly to capacity`)
    const placed = run.results.filter((r) => r.ok).length
    t.equal(placed, 260, `${policy}: 260 placed`)
    t.same(run.results[260], {
      ok: false,
      reason: 'no eligible backend: mx1 full, mx2 full, mx3 full',
      excluded: [
        { id: 'mx1', reason: 'full' },
        { id: 'mx2', reason: 'full' },
        { id: 'mx3', reason: 'full' },
      ],
    })
  }
  const random = simulate('random', [backend('mx1', { capacity: 50 }), backend('mx2'), backend('mx3')], N, mulberry32(14))
  t.equal(random.counts.mx1, 50, 'random: a capped backend stops at its capacity')
  t.same(random.overCapacity, [])
})
