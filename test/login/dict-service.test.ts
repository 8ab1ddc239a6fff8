import t from 'tap'
import { DictLogins, expand } from '../../src/login/dict-service.js'
import { demoDirectory } from '../fakes/memory-directory.js'
import { routerFor } from './router.test.js'

t.test('passdb and userdb keys', async (t) => {
  const dir = demoDirectory()
  const { router } = routerFor(dir)
  const dict = new DictLogins(router, { home: '/var/vmail/%d/%n', uid: 'vmail', quota: '100%%' })
  const value = async (key: string) => {
    const r = await dict.lookup(key)
    return r.kind === 'found' ? (JSON.parse(r.value) as unknown) : r
  }
  t.same(await value('shared/passdb/alice@example.org'), { proxy: 'y', host: '10.0.0.11', nopassword: 'y' }, 'no service: no port')
  t.same(await value('shared/passdb/imap/alice@example.org'), { proxy: 'y', host: '10.0.0.11', nopassword: 'y', port: '143' })
  t.same(await value('shared/passdb/pop3/alice.liddell@example.org'), { proxy: 'y', host: '10.0.0.11', nopassword: 'y', port: '110', destuser: 'alice@example.org' })
  t.same(await value('shared/passdb/lmtp/bob@example.org'), { proxy: 'y', host: '10.0.0.12', nopassword: 'y', port: '24' })
  t.same(await value('shared/userdb/Alice@Example.org'), { user: 'alice@example.org', home: '/var/vmail/example.org/alice', uid: 'vmail', quota: '100%' })
  t.same(await dict.lookup('shared/passdb/nobody@example.org'), { kind: 'notfound' })
  t.same(await dict.lookup('shared/passdb/postmaster@example.org'), { kind: 'notfound' }, 'an alias is not a login')
  t.same(await dict.lookup('shared/passdb/carol@example.org'), { kind: 'notfound' }, 'disabled')
  t.match(await dict.lookup('priv/quota/alice'), { kind: 'fail', reason: /shared\/passdb/ })
  dir.down()
  t.match(await dict.lookup('shared/passdb/imap/someone@example.org'), { kind: 'fail' }, 'directory down, nothing cached: F, never N')
})

t.test('expand', async (t) => {
  t.same(expand({ a: '%u|%n|%d|%%|%x' }, 'a@b.c'), { a: 'a@b.c|a|b.c|%|%x' })
  t.same(expand({ a: '%n/%d' }, 'nodomain'), { a: 'nodomain/' })
})
