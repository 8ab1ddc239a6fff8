// An in-memory PinReader for routing tests: pins set by hand, claims that pin the first eligible
// member (or fail, or find none up) without a store. The store-backed ledger has its own tests.

import type { ClaimOutcome, PinReader } from '../../src/pools/pin-ledger.js'
import type { PoolInfo, PoolMember, Registry } from '../../src/resolve/registry.js'

export class MemoryPins implements PinReader {
  readonly pins = new Map<string, string>()
  readonly claims: string[] = []
  /** What the next claims answer: pin the first eligible member, or fail like an unreachable store. */
  mode: 'pin' | 'fail' = 'pin'

  pin(address: string, member: string): this {
    this.pins.set(address, member)
    return this
  }

  pinned(address: string, pool: PoolInfo, registry: Registry): PoolMember | undefined {
    const id = this.pins.get(address)
    const member = id === undefined ? undefined : registry.member(id)
    return member && member.pool === pool.id && registry.isUp(member) ? member : undefined
  }

  holds(address: string, pool: PoolInfo, registry: Registry): boolean {
    return this.pinned(address, pool, registry) !== undefined
  }

  async claim(address: string, pool: PoolInfo, registry: Registry, _timeoutMs?: number): Promise<ClaimOutcome> {
    this.claims.push(address)
    if (this.mode === 'fail') return 'failed'
    const member = registry.eligibleMembers(pool)[0]
    if (member === undefined) return 'none-up'
    this.pins.set(address, member.id)
    return 'pinned'
  }
}
