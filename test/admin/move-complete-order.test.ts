// Completing a move must never route the account's mail to the source backend again: the
// cached answers that name the old mailHost have to be gone before the moving state is cleared.
// Otherwise, in between, a warm cache answers the old route with nothing left to defer it, and
// mail that waited out the move is delivered to the mailbox it was just moved away from.
// Checked here after every change the instance applies while completing (its own, applied at
// once, and the same ones delivered again by the change bus after the commit).

import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ChangeEvent } from '../../src/cluster/changes.js'
import { lookup, startAdminDaemon } from './daemon.js'

const MX1 = 'lmtp:inet:[10.0.0.11]:24'
const MX2 = 'lmtp:inet:[10.0.0.12]:24'

t.test('completing a move: the old route is evicted before the moving state is cleared', async (t) => {
  const { api, daemon } = await startAdminDaemon(t)
  // bob (mx2) by his address, with an extension in the alias domain, and through the catch-all.
  const keys = ['bob@example.org', 'bob+x@example.net', 'anyone@example.com']
  const transport = async () =>
    Promise.all(
      keys.map(async (k) => {
        const a = await lookup(api, 'transport', k)
        return a.outcome === 'found' ? a.value! : a.outcome
      }),
    )

  const started = await api.post('/v1/moves', { target: 'mx1', accounts: ['bob@example.org'] })
  t.equal(started.status, 201)
  // Cached now: resolutions naming mx2.example.org, answered TEMP while bob moves.
  t.same(await transport(), ['temp', 'temp', 'temp'], 'moving: transport defers')
  t.same(await transport(), ['temp', 'temp', 'temp'], 'and again, from the cache')

  const seen: { change: string; answers: string[] }[] = []
  const apply = daemon.applyChange.bind(daemon)
  daemon.applyChange = async (event: ChangeEvent) => {
    await apply(event)
    seen.push({ change: event.kind, answers: await transport() })
  }
  t.teardown(() => {
    daemon.applyChange = apply
  })

  const done = await api.post(`/v1/moves/${started.body.moves[0].id}/complete`)
  t.equal(done.body.state, 'completed')
  // The change bus delivers the same changes again once the commit is seen.
  await sleep(500)
  daemon.applyChange = apply

  t.ok(seen.some((s) => s.change === 'moves'), 'the moving state was cleared')
  for (const [i, s] of seen.entries()) {
    t.notOk(s.answers.includes(MX2), `after change ${i + 1} (${s.change}): no answer names the source backend (${s.answers.join(', ')})`)
  }
  t.same(await transport(), [MX1, MX1, MX1], 'routed to the target')
})
