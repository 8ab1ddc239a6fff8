// Helpers for the tests of cluster-wide invalidation (admin-cluster, admin-ldap-poll): ask a
// running mailhostd over its lookup endpoint, check that an answer comes from its cache, and
// follow a change until the instance answers it, measuring how long that took.

import type { Test } from 'tap'
import type { Mailhostd } from '../harness/mailhostd.js'

export interface LookupAnswer {
  outcome: string
  value?: string
  reason?: string
  layer: string
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export async function lookup(m: Mailhostd, map: string, key: string): Promise<LookupAnswer> {
  const res = await fetch(`http://127.0.0.1:${m.ports.http}/v1/lookup?map=${encodeURIComponent(map)}&key=${encodeURIComponent(key)}`, {
    signal: AbortSignal.timeout(10_000),
  })
  return (await res.json()) as LookupAnswer
}

/** One word or two per answer: `found VALUE`, `notfound`, `temp`. */
export const said = (a: LookupAnswer) => (a.outcome === 'found' ? `found ${a.value}` : a.outcome)

/** Something asked of an instance repeatedly, and the answer it must end up giving. */
export interface Probe {
  readonly name: string
  readonly ask: () => Promise<string>
  readonly want: string
}

export const probe = (m: Mailhostd, map: string, key: string, want: string): Probe => ({
  name: `${map} ${key}`,
  ask: async () => said(await lookup(m, map, key)),
  want,
})

/** Asks until the instance answers from its cache: it is warm for that key. */
export async function warm(t: Test, m: Mailhostd, map: string, key: string, want: string): Promise<void> {
  let a = await lookup(m, map, key)
  for (let i = 0; i < 5 && a.layer !== 'cache'; i++) a = await lookup(m, map, key)
  t.same({ said: said(a), layer: a.layer }, { said: want, layer: 'cache' }, `warm: ${map} ${key} answered "${want}" from the cache`)
}

export interface Followed {
  readonly name: string
  /** ms from `since` to receiving the first answer with the wanted value; undefined: never. */
  readonly delayMs: number | undefined
  /** How many times it was asked until then (1: the change was there at the first question). */
  readonly polls: number
  /** Every distinct answer given, in order, from `since` on. */
  readonly seen: string[]
  /** Answers after the wanted one that differed from it (flapping back). */
  readonly after: string[]
}

export interface FollowOptions {
  /** The promised bound, ms. */
  readonly boundMs: number
  /** How often each probe is asked, ms. */
  readonly pollMs: number
  /**
   * When to give up, ms after `since`. Longer than the bound on purpose: a change that arrives
   * late is reported with its actual delay (a clearer failure than "not seen in time"), and a
   * change that never arrives still ends the test.
   */
  readonly giveUpMs: number
  /** Where each measurement is recorded, for the test's summary. */
  readonly record: { what: string; ms: number | undefined; polls: number; seen: string[] }[]
}

/**
 * Asks every probe every pollMs, all at once, from `since` (when the change was acknowledged)
 * until each gave its wanted answer, then a few more rounds to catch flapping; asserts that each
 * arrived within boundMs and stayed.
 */
export async function follow(t: Test, what: string, since: number, probes: readonly Probe[], o: FollowOptions): Promise<Followed[]> {
  const EXTRA_ROUNDS = 4
  const state = probes.map((p) => ({ probe: p, delayMs: undefined as number | undefined, polls: 0, seen: [] as string[], after: [] as string[], extra: 0 }))
  const pending = () => state.some((s) => s.delayMs === undefined || s.extra < EXTRA_ROUNDS)
  while (pending() && Date.now() - since < o.giveUpMs) {
    await Promise.all(
      state.map(async (s) => {
        if (s.delayMs !== undefined && s.extra >= EXTRA_ROUNDS) return
        const answer = await s.probe.ask()
        const got = Date.now()
        if (s.seen.at(-1) !== answer) s.seen.push(answer)
        if (s.delayMs === undefined) {
          s.polls++
          if (answer === s.probe.want) s.delayMs = got - since
        } else {
          s.extra++
          if (answer !== s.probe.want) s.after.push(answer)
        }
      }),
    )
    await sleep(o.pollMs)
  }
  const out = state.map((s) => ({ name: s.probe.name, delayMs: s.delayMs, polls: s.polls, seen: s.seen, after: s.after }))
  for (const [i, f] of out.entries()) {
    o.record.push({ what: `${what}: ${f.name}`, ms: f.delayMs, polls: f.polls, seen: f.seen })
    const want = probes[i]!.want
    t.ok(
      f.delayMs !== undefined && f.delayMs <= o.boundMs,
      `${what}: "${want}" for ${f.name} within ${o.boundMs} ms ` +
        `(${f.delayMs === undefined ? `not within ${o.giveUpMs} ms; answers: ${f.seen.join(' -> ')}` : `${f.delayMs} ms, question ${f.polls}`})`,
    )
    t.same(f.after, [], `${what}: ${f.name} stays answered`)
  }
  return out
}

/** The measurements as comment lines for the test output. */
export function summarize(t: Test, who: string, record: FollowOptions['record']): void {
  const ms = record.flatMap((r) => (r.ms === undefined ? [] : [r.ms])).sort((a, b) => a - b)
  if (ms.length > 0) t.comment(`${who}, ${ms.length} measurements (ms): max ${ms.at(-1)}, median ${ms[Math.floor(ms.length / 2)]}, min ${ms[0]}`)
  for (const r of record) t.comment(`  ${r.what}: ${r.ms ?? 'never'} ms${r.polls > 0 ? ` (question ${r.polls}; ${r.seen.join(' -> ')})` : ''}`)
}
