// Audit and move listings page by id: past nine rows the order must be numeric, or the newest
// entries go missing from the first page and keyset pages repeat or skip rows.

import t from 'tap'
import { queryAudit, recordAudit } from '../../src/admin/audit.js'
import { startAdminDaemon } from './daemon.js'

t.test('ids order as numbers in the audit log and the move list', async (t) => {
  const d = await startAdminDaemon(t)
  for (let i = 0; i < 12; i++) await recordAudit(d.daemon.store, { actor: 'bulk', action: 'update', subjectType: 'domain', subject: `d${i}.example` })
  const ids: number[] = []
  let before: number | undefined
  do {
    const page = await queryAudit(d.daemon.store, { limit: 4, ...(before === undefined ? {} : { before }) })
    ids.push(...page.entries.map((e) => e.id))
    before = page.next
  } while (before !== undefined)
  t.same(ids, [...ids].sort((a, b) => b - a), 'newest first')
  t.equal(new Set(ids).size, ids.length, 'no entry twice')
  t.equal(ids.length, 17, '5 from the seed and 12 more')

  // Twelve moves of one account: each aborted before the next starts.
  for (let i = 0; i < 12; i++) {
    const started = await d.api.post('/v1/moves', { target: 'mx2', accounts: ['alice@example.org'] })
    t.equal(started.status, 201)
    t.equal((await d.api.post(`/v1/moves/${started.body.moves[0].id}/abort`)).status, 200)
  }
  const moves: number[] = []
  let after: number | undefined
  do {
    const page = await d.api.get(`/v1/moves?limit=5${after === undefined ? '' : `&after=${after}`}`)
    moves.push(...(page.body.moves as { id: number }[]).map((m) => m.id))
    after = page.body.next
  } while (after !== undefined)
  t.same(moves, Array.from({ length: 12 }, (_, i) => i + 1))
})
