// How the cache holds an answer. At a million cached keys (docs/benchmarks.md, Scale) the
// common answer, one account found by its own address, cost four objects as a Resolution (the
// answer, its one-element mailbox list, the mailbox, and the list references); held as one flat
// record it costs one, and a Resolution equal to the one stored is rebuilt on each read: a few
// short-lived objects, which V8's young generation collects for almost nothing. Misses share
// one frozen answer. Every other shape (aliases, several mailboxes, external targets) is held
// as the Resolution itself. A data error the directory's answer gave (duplicate owners, an alias
// loop) is held too, briefly, as a temporary failure (lookup-cache.ts).

import type { AccountStatus } from '../directory/directory.js'
import type { DirectoryDataError } from '../errors.js'
import type { Resolution } from '../resolve/resolver.js'

const NONE: readonly never[] = Object.freeze([])
const MISS: Resolution = Object.freeze({ kind: 'none' })

/** One account found for the key: the mailbox's fields and the key's rewrite, flat. */
class AccountAnswer {
  constructor(
    readonly id: string,
    readonly address: string,
    readonly mailHost: string,
    readonly status: AccountStatus,
    readonly sendAs: readonly string[],
    readonly rewrite: readonly string[],
  ) {}
}

/** The directory answered with data that must not be guessed about: a temporary failure until it changes. */
export class HeldFailure {
  constructor(readonly error: DirectoryDataError) {}
}

/** A held answer that is an answer, not a failure. */
export type HeldResolution = Resolution | AccountAnswer
export type HeldAnswer = HeldResolution | HeldFailure

export function hold(r: Resolution): HeldResolution {
  if (r.kind === 'none') return MISS
  if (r.via !== 'account' || r.mailboxes.length !== 1 || r.external.length !== 0) return r
  const m = r.mailboxes[0]!
  return new AccountAnswer(m.id, m.address, m.mailHost, m.status, m.sendAs, r.rewrite)
}

export const isHeldFailure = (h: HeldAnswer): h is HeldFailure => h instanceof HeldFailure

export function resolutionOf(h: HeldResolution): Resolution {
  if (!(h instanceof AccountAnswer)) return h
  return {
    kind: 'found',
    via: 'account',
    mailboxes: [{ id: h.id, address: h.address, mailHost: h.mailHost, status: h.status, sendAs: h.sendAs }],
    external: NONE,
    rewrite: h.rewrite,
  }
}

export const isMiss = (h: HeldAnswer): boolean => !(h instanceof AccountAnswer) && !(h instanceof HeldFailure) && h.kind === 'none'
/** An answer with a mailbox or an external target: the only kind the stale reserve may serve. */
export const isFound = (h: HeldAnswer): boolean => h instanceof AccountAnswer || (!(h instanceof HeldFailure) && h.kind === 'found')

/** Ids of the mailboxes an answer reached. */
export function heldMailboxIds(h: HeldAnswer): readonly string[] {
  if (h instanceof AccountAnswer) return [h.id]
  if (h instanceof HeldFailure) return NONE
  return h.kind === 'found' ? h.mailboxes.map((m) => m.id) : NONE
}
