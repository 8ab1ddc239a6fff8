// Which member of a pool a user goes to when no pin says otherwise: weighted rendezvous
// (highest-random-weight) hashing of the canonical address. Every instance computes the same
// member from the same members and weights without talking to the others, and adding or removing
// a member moves only the users whose highest score it holds (its share), nobody else.
//
// Score of member i for a user: -w_i / ln(u_i), with u_i uniform in (0, 1) from a hash of the
// member id and the address. The member with the highest score wins; with that form each member
// wins with probability w_i / sum(w) (Schindelhauer and Schomaker, "Weighted distributed hash
// tables", 2005). SHA-256 is more hash than needed, but it is computed only when a pin is made
// (not per lookup), and its output is the same on every platform and Node version.

import { createHash } from 'node:crypto'

export interface Candidate {
  readonly id: string
  /** > 0: members of weight 0 take no new users and are left out by the caller. */
  readonly weight: number
}

/** 2^52: the hash's top 52 bits become a double in (0, 1) exactly. */
const SCALE = 2 ** 52

/** u in (0, 1), never 0 or 1, from member id and address. */
export function unitHash(memberId: string, address: string): number {
  const digest = createHash('sha256').update(memberId).update('\u0000').update(address).digest()
  // 52 bits: 20 from the first word, 32 from the second.
  const high = digest.readUInt32BE(0) >>> 12
  const low = digest.readUInt32BE(4)
  return (high * 2 ** 32 + low + 0.5) / SCALE
}

/** The member with the highest weighted score for `address`, or undefined when there is none. */
export function chooseMember<C extends Candidate>(address: string, candidates: readonly C[]): C | undefined {
  let best: C | undefined
  let bestScore = -Infinity
  for (const c of candidates) {
    if (!(c.weight > 0)) continue
    const score = -c.weight / Math.log(unitHash(c.id, address))
    // Ties (practically never) go to the smaller id, so every instance breaks them alike.
    if (score > bestScore || (score === bestScore && best !== undefined && c.id < best.id)) {
      best = c
      bestScore = score
    }
  }
  return best
}
