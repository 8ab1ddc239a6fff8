// When the read endpoints need a token (admin.readEndpoints): the bound address decides for
// auto, and only loopback addresses count as loopback.

import t from 'tap'
import { isLoopback, readsNeedToken } from '../../src/http/read-access.js'

t.test('loopback addresses', async (t) => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', '::ffff:127.0.0.1', 'localhost', 'LOCALHOST']) t.ok(isLoopback(h), h)
  for (const h of ['0.0.0.0', '::', '10.0.0.5', '192.0.2.2', '::ffff:10.0.0.5', 'fd00::2', '128.0.0.1', 'localhost.example', '127.0.0.1.example']) t.notOk(isLoopback(h), h)
})

t.test('auto, token, open', async (t) => {
  t.notOk(readsNeedToken('auto', '127.0.0.1'), 'auto on loopback: open')
  t.ok(readsNeedToken('auto', '0.0.0.0'), 'auto on every address: token')
  t.ok(readsNeedToken('auto', '10.0.0.5'), 'auto on a LAN address: token')
  t.ok(readsNeedToken('token', '127.0.0.1'), 'token: always')
  t.notOk(readsNeedToken('open', '0.0.0.0'), 'open: never')
})
