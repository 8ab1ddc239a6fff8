// Token checks for the status page without a daemon: HTTP Basic with the token as the password
// (any user name) where the page asks for it, bearer tokens everywhere, and nothing else.

import t from 'tap'
import { hashToken, TokenAuth } from '../../src/admin/tokens.js'

const auth = new TokenAuth([
  { name: 'ops', role: 'read', sha256: hashToken('read-token') },
  { name: 'root', role: 'admin', sha256: hashToken('adm:in-tökén') },
])
const basic = (userPass: string) => `Basic ${Buffer.from(userPass, 'utf8').toString('base64')}`
const page = (header: string | undefined) => auth.authenticate(header, { basic: true })

t.test('Basic: the password is the token, the user name is anything', async (t) => {
  t.same(page(basic('ops:read-token')), { name: 'ops', role: 'read' })
  t.same(page(basic('someone-else:read-token')), { name: 'ops', role: 'read' }, 'the principal is the token, not the user name')
  t.same(page(basic(':read-token')), { name: 'ops', role: 'read' }, 'an empty user name')
  t.same(page(basic('x:adm:in-tökén')), { name: 'root', role: 'admin' }, 'the password runs from the first colon (RFC 7617), UTF-8')
  t.same(page(`basic  ${Buffer.from('u:read-token').toString('base64')}  `), { name: 'ops', role: 'read' }, 'scheme case and spacing')
  t.same(page('Bearer read-token'), { name: 'ops', role: 'read' }, 'bearer works on the page too')
})

t.test('Basic: wrong or malformed credentials grant nothing', async (t) => {
  for (const [header, why] of [
    [undefined, 'no header'],
    ['', 'empty header'],
    [basic('ops:wrong'), 'wrong token'],
    [basic('ops:'), 'empty password'],
    [basic('read-token'), 'no colon: a user name only'],
    ['Basic', 'no credentials'],
    ['Basic !!!notbase64!!!', 'not base64'],
    [`Basic ${'A'.repeat(1404)}`, 'longer than any token'],
    [`Basic ${Buffer.from('u:read-token').toString('base64')} extra`, 'trailing garbage'],
    ['Digest username="ops"', 'another scheme'],
  ] as const) {
    t.equal(page(header), undefined, why)
  }
})

t.test('the admin API takes bearer tokens only', async (t) => {
  t.equal(auth.authenticate(basic('ops:read-token')), undefined)
  t.equal(auth.authenticate(basic('ops:read-token'), { basic: false }), undefined)
  t.same(auth.authenticate('Bearer adm:in-tökén'), { name: 'root', role: 'admin' })
  t.equal(auth.authenticate('Bearer read-token x'), undefined)
  t.equal(new TokenAuth([]).authenticate(basic('ops:read-token'), { basic: true }), undefined, 'no tokens configured')
})
