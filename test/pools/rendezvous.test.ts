// Weighted rendezvous hashing (src/pools/rendezvous.ts), the member choice every instance makes
// alike: deterministic; removing a member moves only the users it had; adding one takes users only
// to itself; and each member's share of 20,000 addresses is within 5 sigma of its weight.

import fc from 'fast-check'
import t from 'tap'
import { chooseMember, unitHash, type Candidate } from '../../src/pools/rendezvous.js'

const ids = ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8']
const membersArb = fc.uniqueArray(fc.record({ id: fc.constantFrom(...ids), weight: fc.integer({ min: 1, max: 20 }) }), { minLength: 2, maxLength: 8, selector: (m) => m.id })
const addressesArb = fc.uniqueArray(fc.emailAddress(), { minLength: 1, maxLength: 50 })

t.test('deterministic: the same members in any order choose the same member', async (t) => {
  fc.assert(
    fc.property(membersArb, addressesArb, (members, addresses) => {
      const reversed = [...members].reverse()
      for (const a of addresses) {
        const id = chooseMember(a, members)?.id
        if (id === undefined || chooseMember(a, reversed)?.id !== id || chooseMember(a, members.map((m) => ({ ...m })))?.id !== id) return false
      }
      return true
    }),
  )
  t.pass()
})

t.test('unitHash is in (0, 1) and the same for the same input', async (t) => {
  fc.assert(
    fc.property(fc.string(), fc.string(), (id, a) => {
      const u = unitHash(id, a)
      return u > 0 && u < 1 && unitHash(id, a) === u
    }),
  )
  t.pass()
})

t.test('removing a member moves only the users it had', async (t) => {
  fc.assert(
    fc.property(membersArb, addressesArb, fc.nat(), (members, addresses, pick) => {
      const gone = members[pick % members.length]!
      const rest = members.filter((m) => m.id !== gone.id)
      return addresses.every((a) => {
        const before = chooseMember(a, members)!.id
        const after = chooseMember(a, rest)!.id
        return before === gone.id ? after !== gone.id : after === before
      })
    }),
  )
  t.pass()
})

t.test('adding a member takes users only to itself', async (t) => {
  fc.assert(
    fc.property(membersArb, addressesArb, fc.integer({ min: 1, max: 20 }), (members, addresses, weight) => {
      const added: Candidate = { id: 'new-member', weight }
      return addresses.every((a) => {
        const before = chooseMember(a, members)!.id
        const after = chooseMember(a, [...members, added])!.id
        return after === before || after === added.id
      })
    }),
  )
  t.pass()
})

t.test('members of weight 0 take nobody; no candidates: no member', async (t) => {
  t.equal(chooseMember('a@example.org', []), undefined)
  t.equal(chooseMember('a@example.org', [{ id: 'm1', weight: 0 }]), undefined)
  fc.assert(fc.property(membersArb, fc.emailAddress(), (members, a) => chooseMember(a, [...members, { id: 'zero', weight: 0 }])?.id !== 'zero'))
})

t.test('shares follow the weights within 5 sigma over 20,000 addresses', async (t) => {
  const N = 20_000
  for (const members of [
    [
      { id: 'm1', weight: 1 },
      { id: 'm2', weight: 2 },
      { id: 'm3', weight: 1 },
    ],
    [
      { id: 'a', weight: 5 },
      { id: 'b', weight: 1 },
      { id: 'c', weight: 3 },
      { id: 'd', weight: 1 },
    ],
  ]) {
    const counts = new Map<string, number>()
    for (let i = 0; i < N; i++) {
      const id = chooseMember(`user${i}@example.org`, members)!.id
      counts.set(id, (counts.get(id) ?? 0) + 1)
    }
    const total = members.reduce((s, m) => s + m.weight, 0)
    for (const m of members) {
      const p = m.weight / total
      const sigma = Math.sqrt(N * p * (1 - p))
      const got = counts.get(m.id) ?? 0
      t.ok(Math.abs(got - N * p) <= 5 * sigma, `${m.id} (weight ${m.weight}/${total}): ${got} of ${N}, expected ${Math.round(N * p)} ± ${Math.round(5 * sigma)}`)
    }
  }
})
