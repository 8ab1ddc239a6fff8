// The cache holds the common answer (one account) as a flat record and rebuilds a Resolution
// on each read: what is read back must equal what was stored, for every shape.

import t from 'tap'
import { HeldFailure, heldMailboxIds, hold, isFound, isHeldFailure, isMiss, resolutionOf } from '../../src/cache/held-answer.js'
import { DirectoryDataError, ErrorCodes } from '../../src/errors.js'
import type { Mailbox, Resolution } from '../../src/resolve/resolver.js'

const alice: Mailbox = { id: 'uid=alice', address: 'alice@example.org', mailHost: 'mx1.example.org', status: 'active', sendAs: [] }
const bob: Mailbox = { id: 'uid=bob', address: 'bob@example.org', mailHost: 'mx2.example.org', status: 'disabled', sendAs: ['@example.org'] }

const SHAPES: [string, Resolution][] = [
  ['a miss', { kind: 'none' }],
  ['an account by its own address', { kind: 'found', via: 'account', mailboxes: [alice], external: [], rewrite: [] }],
  ['an account by another address or an extension', { kind: 'found', via: 'account', mailboxes: [bob], external: [], rewrite: ['bob+x@example.org'] }],
  ['an alias to two mailboxes', { kind: 'found', via: 'alias', mailboxes: [alice, bob], external: [], rewrite: ['alice@example.org', 'bob@example.org'] }],
  ['an external alias', { kind: 'found', via: 'alias', mailboxes: [], external: ['x@elsewhere.example'], rewrite: ['x@elsewhere.example'] }],
  ['an alias domain', { kind: 'found', via: 'alias-domain', mailboxes: [alice], external: [], rewrite: ['alice@example.org'] }],
]

for (const [what, r] of SHAPES) {
  t.test(what, async (t) => {
    const held = hold(r)
    t.same(resolutionOf(held), r, 'read back equal')
    t.equal(isMiss(held), r.kind === 'none')
    t.equal(isFound(held), r.kind === 'found')
    t.same(heldMailboxIds(held), r.kind === 'found' ? r.mailboxes.map((m) => m.id) : [])
  })
}

t.test('an account answer is rebuilt fresh on each read: a reader cannot change what others get', async (t) => {
  const held = hold(SHAPES[1]![1])
  t.not(resolutionOf(held), resolutionOf(held))
  t.equal(hold({ kind: 'none' }), hold({ kind: 'none' }), 'misses share one frozen answer')
})

t.test('a held data error is neither found nor a miss, and reaches no mailbox', async (t) => {
  const held = new HeldFailure(new DirectoryDataError(ErrorCodes.DUPLICATE_OWNER, 'bob@example.org has 2 owners'))
  t.ok(isHeldFailure(held))
  t.notOk(isFound(held), 'never served from the stale reserve')
  t.notOk(isMiss(held), 'never answered as "no such address"')
  t.same(heldMailboxIds(held), [])
  t.notOk(isHeldFailure(hold({ kind: 'none' })))
})
