// Acceptance for placement at scale, shared by the SQL and LDAP variants
// (admin-placement-sql.test.ts, admin-placement-ldap.test.ts): for each placement policy, a
// mailhostd child (dist/) with five or six backends, each on its own IP, creates 1,000 accounts
// through POST /v1/accounts without a backend, a few requests at a time. Then:
// - the accounts per backend match the policy (tolerances below, with their reasons);
// - nothing landed on the drained or the maintenance backend, the small-capacity backend holds
//   exactly its capacity, and GET /v1/backends counts what the test counted;
// - every address is in the directory with its backend's mailHost (the variant asks the
//   directory itself: SQL tables or an LDAP search, never mailhostd);
// - every address routes to its backend through postmap and the socketmap transport map.
//
// The backend set, the same shape for every policy so the expected numbers can be derived by
// hand (src/admin/placement.ts has the rules):
//   b1 10.0.1.1  active, unlimited; 100 accounts created on it explicitly before the run
//   b2 10.0.1.2  active, unlimited
//   b3 10.0.1.3  active, capacity 50: fills up during every run
//   b4 10.0.1.4  drain; 20 accounts created on it explicitly while it was still active
//   b5 10.0.1.5  maintenance
//   b6 10.0.1.6  weighted only: active, weight 0
// b4 and b5 are the most tempting choices there are: the fewest accounts (least-used), weight 10
// (weighted), the affinity of a domain (domain). The only reason they get nothing is their state.

import type { Test } from 'tap'
import { adminApi, DEMO_TOKENS, type AdminApi } from '../harness/admin-api.js'
import { postmapBatch, socketmap, startMailhostd, type Mailhostd } from '../harness/mailhostd.js'
import type { PeerSet } from '../harness/peer-set.js'

export type Policy = 'random' | 'weighted' | 'least-used' | 'domain'
export const POLICIES: readonly Policy[] = ['random', 'weighted', 'least-used', 'domain']

/** Accounts placed by policy in each run (the acceptance point's number). */
export const PLACED = 1000
const CAPACITY = 50
const PRE_B1 = 100
const PRE_B4 = 20
/** Domain of the accounts created with an explicit backend before the run. */
const PRE_DOMAIN = 'pre.test'

interface BackendSpec {
  readonly id: string
  readonly address: string
  readonly weight: number
  readonly capacity: number | null
  readonly adminState: 'active' | 'drain' | 'maintenance'
}

const backend = (n: number, over: Partial<BackendSpec> = {}): BackendSpec => ({
  id: `b${n}`,
  address: `10.0.1.${n}`,
  weight: 1,
  capacity: null,
  adminState: 'active',
  ...over,
})

export const mailHostOf = (id: string) => `${id}.mail.test`
export const routeOf = (address: string) => `lmtp:inet:[${address}]:24`

/** Accounts created in one domain; phases run one after the other. */
interface Phase {
  readonly domain: string
  readonly count: number
}

export interface PlacementCase {
  readonly policy: Policy
  readonly backends: readonly BackendSpec[]
  /** Domain name -> affinity backend, set through PATCH /v1/domains/{name}. */
  readonly affinity: Readonly<Record<string, string>>
  readonly phases: readonly Phase[]
  /** Checks the accounts placed per backend (total and per domain) against the policy. */
  check(t: Test, placed: Counts, byDomain: ReadonlyMap<string, Counts>): void
}

export type Counts = Readonly<Record<string, number>>

/** Binomial standard deviation of the number of successes in n draws of probability p. */
const sigma = (n: number, p: number) => Math.sqrt(n * p * (1 - p))

/**
 * A count from a binomial draw, within ±5 standard deviations of its mean. For a fair generator
 * a count lands outside that with probability about 6e-7 per assertion, so the test cannot be
 * flaky in practice, while a real bias is far outside it: e.g. weights ignored would put b1 at
 * ~475 instead of 237.5 ± 67, and random skipping one of b1/b2 would put it at 0 or 950.
 */
function binomial(t: Test, name: string, got: number, n: number, p: number): void {
  const mean = n * p
  const tolerance = 5 * sigma(n, p)
  t.ok(Math.abs(got - mean) <= tolerance, `${name}: ${got} accounts, expected ${mean.toFixed(1)} ± ${tolerance.toFixed(1)} (5σ of Binomial(${n}, ${p}))`)
}

/** What every policy must give: nothing on b4/b5, b3 exactly full, PLACED in all. */
function common(t: Test, placed: Counts): void {
  t.equal(placed.b4 ?? 0, 0, 'nothing placed on b4 (drain)')
  t.equal(placed.b5 ?? 0, 0, 'nothing placed on b5 (maintenance)')
  t.equal(placed.b3 ?? 0, CAPACITY, `b3 filled to exactly its capacity (${CAPACITY}), never beyond`)
  t.equal(
    Object.values(placed).reduce((s, n) => s + n, 0),
    PLACED,
    `${PLACED} accounts placed`,
  )
}

const base = (): BackendSpec[] => [
  backend(1),
  backend(2),
  backend(3, { capacity: CAPACITY }),
  backend(4, { adminState: 'drain', weight: 10 }),
  backend(5, { adminState: 'maintenance', weight: 10 }),
]

export const CASES: Readonly<Record<Policy, PlacementCase>> = {
  // Uniform among the eligible backends: b1, b2 and b3 until b3 is full, then b1 and b2. b3 takes
  // a third of the draws while it has room, so it is full after ~150 of them (P(fewer than 50 in
  // 1,000) is nil) and ends at exactly 50. Every other draw picks b1 or b2 with probability 1/2
  // each, before and after b3 fills, so b1 ~ Binomial(950, 1/2): 475 ± 77 (5σ).
  random: {
    policy: 'random',
    backends: base(),
    affinity: {},
    phases: [{ domain: 'scale.test', count: PLACED }],
    check(t, placed) {
      common(t, placed)
      binomial(t, 'b1', placed.b1 ?? 0, PLACED - CAPACITY, 1 / 2)
      t.equal((placed.b1 ?? 0) + (placed.b2 ?? 0), PLACED - CAPACITY, 'the rest on b1 and b2')
    },
  },

  // By weight among the eligible backends with a weight above 0: b1 1, b2 3, b3 2 (until full);
  // never b6 (weight 0), never b4/b5 (weight 10, but drain/maintenance). A draw that does not
  // pick b3 picks b1 with probability 1/(1+3) whether b3 is still open or full, so of the 950
  // accounts not on b3, b1 ~ Binomial(950, 1/4): 237.5 ± 66.8 (5σ), and b2 takes the rest.
  weighted: {
    policy: 'weighted',
    backends: [
      backend(1, { weight: 1 }),
      backend(2, { weight: 3 }),
      backend(3, { weight: 2, capacity: CAPACITY }),
      backend(4, { adminState: 'drain', weight: 10 }),
      backend(5, { adminState: 'maintenance', weight: 10 }),
      backend(6, { weight: 0 }),
    ],
    affinity: {},
    phases: [{ domain: 'scale.test', count: PLACED }],
    check(t, placed) {
      common(t, placed)
      t.equal(placed.b6 ?? 0, 0, 'nothing placed on b6 (weight 0)')
      binomial(t, 'b1', placed.b1 ?? 0, PLACED - CAPACITY, 1 / 4)
      t.equal((placed.b1 ?? 0) + (placed.b2 ?? 0), PLACED - CAPACITY, 'the rest on b1 and b2')
    },
  },

  // Fewest accounts, raw counts (b1 and b2 have no capacity), ties at random. Start: b1 100
  // (created before), b2 0, b3 0 (b4 has 20, and b5 none, but they are out). b2 and b3 level up
  // together to 50 each (100 accounts), b3 is full; b2 alone to 100 (50 more); then b1 and b2 are
  // level and the remaining 850 alternate between them, 425 each. Deterministic whatever the tie
  // breaks, and 850 is even: exact, no tolerance. Placed: b1 425, b2 525, b3 50.
  'least-used': {
    policy: 'least-used',
    backends: base(),
    affinity: {},
    phases: [{ domain: 'scale.test', count: PLACED }],
    check(t, placed) {
      common(t, placed)
      t.same({ b1: placed.b1 ?? 0, b2: placed.b2 ?? 0 }, { b1: 425, b2: 525 }, 'least-used levels b1 and b2 exactly (raw counts)')
    },
  },

  // The domain's affinity backend while it can take accounts, else least-used (as above).
  // Three domains, one after the other:
  //   pinned.test  affinity b1 (active, unlimited): all 200 on b1 (b1: 300 with the 100 before)
  //   home.test    affinity b3 (capacity 50): the first 50 on b3; then b3 is full and least-used
  //                takes over: b2 (0) catches up with b1 (300), 300 accounts, and the last 150
  //                alternate, 75 each: b3 50, b1 75, b2 375
  //   drained.test affinity b4 (drain): never b4; least-used from b1 = b2 = 375: 150 each
  // All exact, for the same reason as least-used.
  domain: {
    policy: 'domain',
    backends: base(),
    affinity: { 'pinned.test': 'b1', 'home.test': 'b3', 'drained.test': 'b4' },
    phases: [
      { domain: 'pinned.test', count: 200 },
      { domain: 'home.test', count: 500 },
      { domain: 'drained.test', count: 300 },
    ],
    check(t, placed, byDomain) {
      common(t, placed)
      const of = (d: string) => {
        const c = byDomain.get(d) ?? {}
        return { b1: c.b1 ?? 0, b2: c.b2 ?? 0, b3: c.b3 ?? 0, b4: c.b4 ?? 0, b5: c.b5 ?? 0 }
      }
      t.same(of('pinned.test'), { b1: 200, b2: 0, b3: 0, b4: 0, b5: 0 }, 'pinned.test: all on its affinity b1')
      t.same(of('home.test'), { b1: 75, b2: 375, b3: 50, b4: 0, b5: 0 }, 'home.test: b3 until full, then least-used')
      t.same(of('drained.test'), { b1: 150, b2: 150, b3: 0, b4: 0, b5: 0 }, 'drained.test: affinity b4 drains, least-used instead')
    },
  },
}

/** The directory as the variant reads it itself: primary address -> mailHost, every account. */
export type ReadDirectory = () => Promise<Map<string, string>>

export interface RunOptions {
  /** `directory` (and `store`) keys of mailhostd's configuration. */
  readonly config: Record<string, unknown>
  readonly readDirectory: ReadDirectory
  /** Create requests in flight at once. */
  readonly concurrency: number
  /** Whose postmap asks the transport map at the end (Debian 12's by default). */
  readonly set?: PeerSet
}

const domainsOf = (c: PlacementCase) => [PRE_DOMAIN, ...new Set(c.phases.map((p) => p.domain))]

/** Runs one policy's case end to end; the caller owns the peers (directory, store). */
export async function runPlacementCase(t: Test, c: PlacementCase, opts: RunOptions): Promise<void> {
  const started = performance.now()
  const m = await startMailhostd({
    ...opts.config,
    // info, not the harness's debug: a line per lookup and request is 10,000s of lines here.
    log: { level: 'info' },
    domains: domainsOf(c).map((name) => ({ name })),
    backends: c.backends.map((b) => ({ id: b.id, mailHosts: [mailHostOf(b.id)], address: b.address, route: 'lmtp' })),
    admin: { tokens: DEMO_TOKENS, placement: { policy: c.policy } },
  })
  t.teardown(() => m.stop())
  const ready = performance.now()
  const api = adminApi(m.ports.http)
  const backendOf = new Map(c.backends.map((b) => [b.id, b]))
  /** Address -> backend id, every account this run created (explicitly placed ones too). */
  const owner = new Map<string, string>()

  // 1. Weights and capacities through the API (the config file has no say over them); the
  //    accounts created before the run, on b1 and on b4 while it is still active; then the
  //    admin states, and the domains' affinities.
  for (const b of c.backends) {
    const r = await api.patch(`/v1/backends/${b.id}`, { weight: b.weight, capacity: b.capacity })
    t.equal(r.status, 200, `PATCH ${b.id} weight ${b.weight} capacity ${String(b.capacity)}`)
  }
  await createMany(api, [...range(PRE_B1)].map((i) => ({ address: `pre-b1-${i}@${PRE_DOMAIN}`, backend: 'b1' })), opts.concurrency, owner)
  await createMany(api, [...range(PRE_B4)].map((i) => ({ address: `pre-b4-${i}@${PRE_DOMAIN}`, backend: 'b4' })), opts.concurrency, owner)
  for (const b of c.backends.filter((x) => x.adminState !== 'active')) {
    const r = await api.patch(`/v1/backends/${b.id}`, { adminState: b.adminState })
    t.equal(r.status, 200, `PATCH ${b.id} adminState ${b.adminState}`)
  }
  for (const [domain, affinity] of Object.entries(c.affinity)) {
    const r = await api.patch(`/v1/domains/${domain}`, { affinity })
    t.equal(r.status, 200, `PATCH ${domain} affinity ${affinity}`)
  }
  const before = await api.get('/v1/backends')
  t.same(
    countsOf(before.body.backends),
    { ...zeros(c), b1: PRE_B1, b4: PRE_B4 },
    'GET /v1/backends before the run: only the explicitly placed accounts',
  )

  // 2. The run: PLACED accounts without a backend, phase by phase.
  const setUp = performance.now()
  const placed: Record<string, number> = zeros(c)
  const byDomain = new Map<string, Record<string, number>>()
  let n = 0
  for (const phase of c.phases) {
    const requests = [...range(phase.count)].map(() => ({ address: `u${String(++n).padStart(4, '0')}@${phase.domain}` }))
    const got = await createMany(api, requests, opts.concurrency, owner)
    const inDomain = zeros(c)
    for (const id of got) {
      placed[id] = (placed[id] ?? 0) + 1
      inDomain[id] = (inDomain[id] ?? 0) + 1
    }
    byDomain.set(phase.domain, inDomain)
  }
  const created = performance.now()
  t.comment(`${c.policy}: ${PLACED} creates in ${seconds(setUp, created)} (${opts.concurrency} in flight); placed ${JSON.stringify(placed)}`)
  for (const [d, counts] of byDomain) if (byDomain.size > 1) t.comment(`  ${d}: ${JSON.stringify(counts)}`)

  // 3. The distribution.
  c.check(t, placed, byDomain)

  // 4. mailhostd's own counts agree, and placement now names each excluded backend's reason.
  const expected = Object.fromEntries(c.backends.map((b) => [b.id, (placed[b.id] ?? 0) + (b.id === 'b1' ? PRE_B1 : b.id === 'b4' ? PRE_B4 : 0)]))
  const after = await api.get('/v1/backends')
  t.equal(after.status, 200)
  t.same(countsOf(after.body.backends), expected, 'GET /v1/backends counts what the test created on each backend')
  const last = c.phases.at(-1)!.domain
  const placement = await api.get(`/v1/placement?domain=${last}`)
  t.same(
    Object.fromEntries((placement.body.excluded as { id: string; reason: string }[]).map((e) => [e.id, e.reason])),
    { b3: 'full', b4: 'drain', b5: 'maintenance' },
    'placement excludes b3 (full), b4 (drain), b5 (maintenance)',
  )

  // 5. Presence: the directory itself, asked without mailhostd.
  t.equal(owner.size, PRE_B1 + PRE_B4 + PLACED, 'every create answered a different address')
  const directory = await opts.readDirectory()
  const ours = [...directory].filter(([address]) => owner.has(address))
  t.equal(ours.length, owner.size, `all ${owner.size} created addresses are in the directory`)
  const wrongHost = [...owner].filter(([address, id]) => directory.get(address) !== mailHostOf(id))
  t.same(wrongHost.slice(0, 5), [], 'each with the mailHost of the backend the API answered')
  const inDirectory = zeros(c)
  for (const [, host] of directory) {
    const b = c.backends.find((x) => mailHostOf(x.id) === host)
    if (b) inDirectory[b.id] = (inDirectory[b.id] ?? 0) + 1
  }
  t.same(inDirectory, expected, 'the directory holds per backend what the test created')

  const checked = performance.now()

  // 6. Routing: every address through Postfix's socketmap client, in one postmap run.
  const addresses = [...owner.keys()]
  const res = await postmapBatch(socketmap(m.ports.socketmap, 'transport'), addresses, opts.set)
  t.equal(res.code, 0, `postmap -q - exits 0 ${res.stderr.trim()}`)
  const routes = new Map(
    res.stdout
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.split('\t') as [string, string]),
  )
  t.equal(routes.size, addresses.length, `postmap answered all ${addresses.length} addresses`)
  const misrouted = addresses.filter((a) => routes.get(a) !== routeOf(backendOf.get(owner.get(a)!)!.address))
  t.same(
    misrouted.slice(0, 5).map((a) => `${a} -> ${routes.get(a) ?? '(no answer)'}, want ${routeOf(backendOf.get(owner.get(a)!)!.address)}`),
    [],
    'every address routes to its own backend (lmtp:inet:[IP]:24)',
  )
  const done = performance.now()
  t.comment(
    `${c.policy}: whole case ${seconds(started, done)}: start ${seconds(started, ready)}, set-up ${seconds(ready, setUp)}, ` +
      `creates ${seconds(setUp, created)}, counts and directory ${seconds(created, checked)}, postmap ${seconds(checked, done)}`,
  )
  assertNoErrors(t, m)
}

/**
 * POST /v1/accounts for each request, `concurrency` at a time; returns the backend of each
 * answer (in request order) and records address -> backend in `owner`. Every answer must be a
 * 201 naming a known backend and its mailHost; the first failure stops the run with its body.
 */
async function createMany(
  api: AdminApi,
  requests: readonly { address: string; backend?: string }[],
  concurrency: number,
  owner: Map<string, string>,
): Promise<string[]> {
  const out: string[] = new Array<string>(requests.length)
  let next = 0
  const worker = async () => {
    while (next < requests.length) {
      const i = next++
      const req = requests[i]!
      const r = await api.post('/v1/accounts', req)
      if (r.status !== 201 || typeof r.body?.backend !== 'string' || r.body.mailHost !== mailHostOf(r.body.backend)) {
        throw new Error(`POST /v1/accounts ${JSON.stringify(req)}: ${r.status} ${JSON.stringify(r.body)}`)
      }
      if (req.backend !== undefined && r.body.backend !== req.backend) throw new Error(`${req.address} asked for ${req.backend}, got ${r.body.backend}`)
      out[i] = r.body.backend
      owner.set(r.body.address, r.body.backend)
    }
  }
  await Promise.all([...range(concurrency)].map(worker))
  return out
}

const seconds = (from: number, to: number) => `${((to - from) / 1000).toFixed(1)} s`

function* range(n: number): Generator<number> {
  for (let i = 0; i < n; i++) yield i
}

const zeros = (c: PlacementCase): Record<string, number> => Object.fromEntries(c.backends.map((b) => [b.id, 0]))

const countsOf = (backends: { id: string; accounts: number | null }[]) => Object.fromEntries(backends.map((b) => [b.id, b.accounts]))

/** mailhostd logged nothing at error level or above during the run. */
function assertNoErrors(t: Test, m: Mailhostd): void {
  const errors = m.logs().filter((l) => typeof l.level === 'number' && l.level >= 50)
  t.same(errors.slice(0, 3), [], 'mailhostd logged no errors')
}
