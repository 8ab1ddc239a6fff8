// Placement of a new account (architecture.md §6): which backend a mailbox is created on. A pure
// function with the randomness injected, so the distribution is tested with a seeded generator
// and a decision can be replayed. Whatever the policy, a backend in maintenance, draining, down
// or full never gets a new account; when none is left the caller gets a reason naming each
// backend and why, not an exception.
//
// Candidate ids are registry keys, hence unique; the policies work on the eligible list in the
// caller's order, so the same candidates and the same random sequence give the same answer.

import type { PlacementPolicy } from '../config/schema.js'
import type { AdminState } from '../resolve/registry.js'

export interface Candidate {
  readonly id: string
  /** >= 0; weight 0 means never chosen by 'weighted'. */
  readonly weight: number
  /** Max accounts, null = unlimited; zero or negative means full. */
  readonly capacity: number | null
  /** Live account count. */
  readonly accounts: number
  readonly adminState: AdminState
  /** False when health checks say down. */
  readonly healthy: boolean
}

export interface PlacementRequest {
  readonly policy: PlacementPolicy
  readonly candidates: readonly Candidate[]
  /** For 'domain': the domain's affinity backend id, if any. */
  readonly affinity?: string
  /** Returns a float in [0, 1); injected so tests are deterministic. */
  readonly random: () => number
}

export interface Exclusion {
  readonly id: string
  readonly reason: 'drain' | 'maintenance' | 'down' | 'full'
}

export type Placement =
  | {
      readonly ok: true
      readonly backend: string
      /** The policy actually applied ('domain' falls back to 'least-used'). */
      readonly applied: PlacementPolicy
      /** Ids of the backends that could have taken the account, in the candidates' order. */
      readonly eligible: readonly string[]
      readonly excluded: readonly Exclusion[]
    }
  | { readonly ok: false; readonly reason: string; readonly excluded: readonly Exclusion[] }

/**
 * Why a candidate cannot take a new account, or undefined when it can. One reason per backend,
 * the first that applies: maintenance, drain, down, full. The operator's decision is named
 * before what probes and counts say, since it is what the operator has to undo.
 */
export function exclusionOf(c: Candidate): Exclusion['reason'] | undefined {
  if (c.adminState === 'maintenance') return 'maintenance'
  if (c.adminState === 'drain') return 'drain'
  if (!c.healthy) return 'down'
  // capacity <= 0 is tested on its own so that a (bogus) negative account count cannot make a
  // zero-capacity backend look free.
  if (c.capacity !== null && (c.capacity <= 0 || c.accounts >= c.capacity)) return 'full'
  return undefined
}

export function place(req: PlacementRequest): Placement {
  const eligible: Candidate[] = []
  const excluded: Exclusion[] = []
  for (const c of req.candidates) {
    const reason = exclusionOf(c)
    if (reason === undefined) eligible.push(c)
    else excluded.push({ id: c.id, reason })
  }
  if (eligible.length === 0) {
    const why = excluded.length === 0 ? 'no backends registered' : excluded.map((e) => `${e.id} ${e.reason}`).join(', ')
    return { ok: false, reason: `no eligible backend: ${why}`, excluded }
  }
  const chosen = choose(req, eligible)
  if (typeof chosen === 'string') return { ok: false, reason: chosen, excluded }
  return { ok: true, backend: chosen.backend.id, applied: chosen.applied, eligible: eligible.map((c) => c.id), excluded }
}

type Choice = { readonly backend: Candidate; readonly applied: PlacementPolicy } | string

function choose(req: PlacementRequest, eligible: readonly Candidate[]): Choice {
  const policy: PlacementPolicy = req.policy
  switch (policy) {
    case 'random':
      return { backend: pick(eligible, req.random), applied: 'random' }
    case 'weighted': {
      const backend = weighted(eligible, req.random)
      if (backend !== undefined) return { backend, applied: 'weighted' }
      const why = req.candidates.map((c) => `${c.id} ${exclusionOf(c) ?? `weight ${c.weight}`}`).join(', ')
      return `no eligible backend with a weight above 0: ${why}`
    }
    case 'least-used':
      return { backend: pick(leastUsed(eligible), req.random), applied: 'least-used' }
    case 'domain': {
      const home = req.affinity === undefined ? undefined : eligible.find((c) => c.id === req.affinity)
      if (home !== undefined) return { backend: home, applied: 'domain' }
      return { backend: pick(leastUsed(eligible), req.random), applied: 'least-used' }
    }
    default:
      // Only reachable from untyped callers; an answer beats a throw in the admin API.
      return `unknown placement policy ${JSON.stringify(policy satisfies never)}`
  }
}

/**
 * Uniform choice. A single item is returned without consuming a random number, so a replayed
 * sequence stays aligned however many choices were forced. An out-of-contract random value (1,
 * negative, NaN) is clamped to a valid index rather than producing undefined.
 */
function pick<T>(items: readonly T[], random: () => number): T {
  if (items.length === 1) return items[0]!
  const i = Math.floor(random() * items.length)
  return items[Number.isNaN(i) ? 0 : Math.min(items.length - 1, Math.max(0, i))]!
}

/** Weighted random among eligible backends with a weight above 0; undefined when there are none. */
function weighted(eligible: readonly Candidate[], random: () => number): Candidate | undefined {
  const positive = eligible.filter((c) => c.weight > 0)
  if (positive.length <= 1) return positive[0]
  const max = positive.reduce((m, c) => Math.max(m, c.weight), 0)
  // An infinite weight outweighs every finite one: the limit of "proportional" is uniform among
  // the infinite ones. Otherwise weights are scaled by the largest so the sum cannot overflow.
  if (max === Infinity) return pick(positive.filter((c) => c.weight === Infinity), random)
  const scaled = positive.map((c) => c.weight / max)
  let x = random() * scaled.reduce((s, w) => s + w, 0)
  for (let i = 0; i < positive.length; i++) {
    x -= scaled[i]!
    if (x < 0) return positive[i]!
  }
  // Rounding at the very top of the range, or a random() of 1 or NaN.
  return positive[positive.length - 1]!
}

/**
 * The eligible backends with the lowest fill; the caller picks among them uniformly, so
 * placements onto backends with equal counts spread instead of piling onto the first listed.
 *
 * Fill is accounts / capacity when every eligible backend has a capacity: a backend twice the
 * size takes twice the accounts and all fill up together. (Eligible capacities are > 0, since
 * zero or negative means full.) As soon as one is unlimited it has no ratio, and a ratio is not
 * comparable with a count, so all compare raw account counts: a capped backend takes its even
 * share until it is full, is then excluded as full, and the others carry on. Equal ratios of
 * integers divide to equal doubles (division is correctly rounded), so ties are exact.
 */
function leastUsed(eligible: readonly Candidate[]): Candidate[] {
  const byRatio = eligible.every((c) => c.capacity !== null)
  const fill = (c: Candidate) => (byRatio ? c.accounts / c.capacity! : c.accounts)
  let lowest: Candidate[] = []
  let min = Infinity
  for (const c of eligible) {
    const f = fill(c)
    if (f < min || lowest.length === 0) {
      min = f
      lowest = [c]
    } else if (f === min) {
      lowest.push(c)
    }
  }
  return lowest
}
