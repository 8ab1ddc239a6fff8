// A leading U+FEFF (the bytes EF BB BF) is part of the text in every protocol field, never a
// byte-order mark to drop: TextDecoder drops it unless told not to. The codecs hand over what the
// peer sent; what it means is the resolver's decision (it trims keys as ECMAScript defines
// white space, U+FEFF included). Found by the policy decoder's chunking property: a generated
// attribute name "\uFEFF" decoded as "" when a chunk began with it, as a whole stream did not.

import t from 'tap'
import { parseSocketmapRequest } from '../../src/protocols/socketmap.js'
import { parseTcpTableRequest } from '../../src/protocols/tcp-table.js'
import { parseDictLine } from '../../src/protocols/dict.js'
import { PolicyDecoder } from '../../src/protocols/policy.js'
import { percentDecode } from '../../src/http/nginx-auth.js'

const BOM = '\uFEFF'

t.test('socketmap and tcp_table keys keep a leading U+FEFF', async (t) => {
  t.same(parseSocketmapRequest(Buffer.from(`transport ${BOM}alice@example.org`)), { map: 'transport', key: `${BOM}alice@example.org` })
  t.same(parseSocketmapRequest(Buffer.from(`${BOM}transport alice@example.org`))?.map, `${BOM}transport`, 'and map names')
  t.same(parseTcpTableRequest(Buffer.from('get %EF%BB%BFalice@example.org')), { key: `${BOM}alice@example.org` })
})

t.test('dict lookups and policy attributes keep it too', async (t) => {
  t.match(parseDictLine(Buffer.from(`Lshared/passdb/${BOM}alice@example.org\t${BOM}alice@example.org`)), { kind: 'lookup', key: `shared/passdb/${BOM}alice@example.org`, user: `${BOM}alice@example.org` })
  t.match(parseDictLine(Buffer.from(`L${BOM}key\tuser`)), { kind: 'lookup', key: `${BOM}key` })
  const d = new PolicyDecoder(16384)
  d.push(Buffer.from(`${BOM}name=${BOM}value\nrecipient=${BOM}bob@example.org\n\n`))
  const item = d.next()
  t.equal(item?.type, 'request')
  if (item?.type !== 'request') return
  t.equal(item.request.get(`${BOM}name`), `${BOM}value`)
  t.equal(item.request.get('recipient'), `${BOM}bob@example.org`)
})

t.test("nginx's percent-decoded Auth-User keeps it", async (t) => {
  t.equal(percentDecode('%EF%BB%BFalice@example.org'), `${BOM}alice@example.org`)
})
