// A backend that an unfinished move is filling cannot be removed: completing the move would put
// the account on a backend that no longer exists. Which states are unfinished is the move
// vocabulary's (src/admin/move-states.ts), which the check reads rather than spelling them again.

import t from 'tap'
import { startAdminDaemon } from './daemon.js'

t.test('a backend is removable only once no unfinished move targets it', async (t) => {
  const { api } = await startAdminDaemon(t)
  t.equal((await api.post('/v1/backends', { id: 'mx3', address: '10.0.0.13' })).status, 201)
  const started = await api.post('/v1/moves', { target: 'mx3', accounts: ['bob@example.org'] })
  t.equal(started.status, 201)
  const id = started.body.moves[0].id

  const refused = await api.del('/v1/backends/mx3')
  t.equal(refused.status, 409)
  t.match(refused.body, { code: 'MH_BACKEND_IN_USE', detail: /mx3 is the target of unfinished moves/ })

  t.match((await api.post(`/v1/moves/${id}/abort`)).body, { state: 'aborted' })
  t.equal((await api.del('/v1/backends/mx3')).status, 204, 'an aborted move holds nothing')
})
