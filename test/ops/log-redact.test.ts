// Secret censoring in log lines (src/log-redact.ts): secret-named fields at any depth, in arrays,
// errors and their causes, child bindings; the logged object itself is never changed, and a
// line without secrets is passed through untouched (no copy).

import { Writable } from 'node:stream'
import t from 'tap'
import { createLogger } from '../../src/log.js'
import { CENSOR, MAX_DEPTH, SECRET_KEYS, censorSecrets } from '../../src/log-redact.js'

function capture() {
  let out = ''
  const log = createLogger('debug', new Writable({ write: (chunk: Buffer, _e, done) => ((out += chunk.toString()), done()) }))
  return { log, text: async () => (await new Promise((r) => setImmediate(r)), out) }
}

t.test('no secrets: the very same object, not a copy', async (t) => {
  const line = { protocol: 'dovecot', service: 'imap', user: 'alice@example.org', rip: '192.0.2.1', nested: { a: [1, { b: 'c' }] }, when: new Date(0) }
  t.equal(censorSecrets(line), line)
  t.equal(censorSecrets('password'), 'password', 'a string is a value, not a key')
  t.equal(censorSecrets(null), null)
})

t.test('secret-named fields at any depth, the original left alone', async (t) => {
  const deep = { a: { b: { c: { d: { password: 'p-deep-secret', keep: 'yes' } } } } }
  const out = censorSecrets(deep)
  t.same(out, { a: { b: { c: { d: { password: CENSOR, keep: 'yes' } } } } })
  t.equal(deep.a.b.c.d.password, 'p-deep-secret', 'the caller\'s object is not modified')
  t.same(censorSecrets([{ token: 't' }, 'x', [{ secret: 's' }]]), [{ token: CENSOR }, 'x', [{ secret: CENSOR }]], 'arrays')
  t.same(censorSecrets({ password: null, token: undefined }), { password: CENSOR, token: undefined }, 'null is censored; undefined is not logged anyway')
  const frozen = Object.freeze({ bindPassword: 'frozen-secret', x: 1 })
  t.same(censorSecrets({ frozen }), { frozen: { bindPassword: CENSOR, x: 1 } }, 'a frozen object is copied, not written')
  for (const key of SECRET_KEYS) t.same(censorSecrets({ x: { [key]: 'v' } }), { x: { [key]: CENSOR } }, key)
})

t.test('too deep, and cycles', async (t) => {
  let nested: Record<string, unknown> = { password: 'bottom-secret' }
  for (let i = 0; i < MAX_DEPTH + 4; i++) nested = { n: nested }
  t.notOk(JSON.stringify(censorSecrets(nested)).includes('bottom-secret'), 'past MAX_DEPTH a value is censored whole')
  const cyclic: Record<string, unknown> = { name: 'loop', password: 'cyclic-secret' }
  cyclic.self = cyclic
  cyclic.again = { back: cyclic }
  const out = censorSecrets(cyclic)
  t.equal(out.password, CENSOR, 'terminates, and censors')
})

t.test('errors: own fields and causes; message and stack kept', async (t) => {
  const cause = Object.assign(new Error('inner'), { password: 'cause-secret' })
  const err = Object.assign(new Error('outer', { cause }), { code: 'E_X', token: 'err-secret' })
  const out = censorSecrets({ err })
  t.ok(out.err instanceof Error)
  t.equal(out.err.message, 'outer')
  t.equal(out.err.stack, err.stack)
  t.equal(out.err.token, CENSOR)
  t.equal(out.err.code, 'E_X')
  t.equal((out.err.cause as { password: string }).password, CENSOR)
  t.equal(err.token, 'err-secret', 'the error itself is untouched')

  const { log, text } = capture()
  log.error({ err }, 'failed')
  log.error(err)
  const lines = await text()
  t.notOk(/secret/.test(lines), `no secret in the serialized errors: ${lines}`)
  t.match(lines, /"message":"outer/)
  t.match(lines, /"code":"E_X"/)
})

t.test('through the logger: fields, child bindings, and shapes the old paths missed', async (t) => {
  const { log, text } = capture()
  const child = log.child({ component: 'x', config: { ldap: { bindPassword: 'bind-secret' } }, token: 'child-secret' })
  child.info({ deep: { er: { still: { password: 'three-levels-secret' } } }, list: [{ secret: 'list-secret' }] }, 'line')
  log.info({ headers: { cookie: 'c-secret', 'x-auth-key': 'k-secret', 'auth-pass': 'a-secret', authorization: 'Basic h-secret' } }, 'headers')
  log.info({ req: { url: '/v1/x?token=url-secret' }, storeUrl: 'postgres://u:pw-secret@h/db' }, 'urls')
  const out = await text()
  t.notOk(/-secret/.test(out), `nothing secret left: ${out}`)
  const [first] = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  t.match(first, { component: 'x', token: CENSOR, config: { ldap: { bindPassword: CENSOR } }, msg: 'line' })
})
