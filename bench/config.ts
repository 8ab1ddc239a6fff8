// Every knob of `npm run bench`, read once from the environment. The report prints this table
// too (docs/benchmarks.md), so the names, defaults and meanings live only here.

export interface Knob {
  readonly env: string
  readonly default: number
  readonly meaning: string
}

export const KNOBS = {
  seconds: { env: 'BENCH_SECONDS', default: 5, meaning: 'duration of each timed load run, in seconds' },
  maxRequests: { env: 'BENCH_MAX_REQUESTS', default: 2_000_000, meaning: 'a timed load run also stops after this many requests' },
  connections: { env: 'BENCH_CONNECTIONS', default: 50, meaning: 'persistent connections of the socketmap/tcp_table load runs (one outstanding request each)' },
  accounts: { env: 'BENCH_ACCOUNTS', default: 10_000, meaning: 'accounts in the generated directory (LDAP and SQL)' },
  hitRatio: { env: 'BENCH_HIT_RATIO', default: 0.9, meaning: 'share of keys in the mixed runs that exist; the rest are unknown addresses in a served domain' },
  peerKeys: { env: 'BENCH_PEER_KEYS', default: 5_000, meaning: 'keys fed to each `postmap -q -` in the Postfix ldap: comparison' },
  missKeys: { env: 'BENCH_MISS_KEYS', default: 400, meaning: 'never-asked keys in the miss-path comparison (each asked once of mailhostd and once of slapd)' },
  coalesce: { env: 'BENCH_COALESCE', default: 1_000, meaning: 'concurrent lookups of one cold key in the coalescing check (each on its own connection)' },
  scaleAccounts: { env: 'BENCH_SCALE_ACCOUNTS', default: 1_000_000, meaning: 'accounts in the scale run (bench/scale.ts); 0 skips it' },
  poolAccounts: { env: 'BENCH_POOL_ACCOUNTS', default: 10_000, meaning: 'accounts of the pooled-lookups run (bench/pooled-lookups.ts), half on a plain backend and half on a pool of 3 members' },
  profileSeconds: { env: 'BENCH_PROFILE_SECONDS', default: 3, meaning: 'seconds each missed target\'s workload runs under `node --cpu-prof`' },
} as const satisfies Record<string, Knob>

export type KnobName = keyof typeof KNOBS

function read(k: Knob): number {
  const raw = process.env[k.env]
  if (raw === undefined || raw === '') return k.default
  const n = Number(raw)
  if (!Number.isFinite(n) || n < 0 || (n === 0 && k.env !== KNOBS.scaleAccounts.env)) throw new Error(`${k.env}=${raw}: expected a positive number`)
  return n
}

export type BenchConfig = { readonly [K in KnobName]: number }

export function benchConfig(): BenchConfig {
  const out = {} as Record<KnobName, number>
  for (const [name, k] of Object.entries(KNOBS) as [KnobName, Knob][]) out[name] = read(k)
  if (out.hitRatio > 1) throw new Error(`${KNOBS.hitRatio.env} must be at most 1`)
  return out
}

/** The knobs that differ from their defaults, as `NAME=value ` prefixes for the printed command. */
export function nonDefaultEnv(c: BenchConfig): string {
  return (Object.entries(KNOBS) as [KnobName, Knob][])
    .filter(([name, k]) => c[name] !== k.default)
    .map(([name, k]) => `${k.env}=${c[name]} `)
    .join('')
}
