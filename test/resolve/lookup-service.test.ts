// The demo case table through the real resolver, maps and cache, on the in-memory directory.

import t from 'tap'
import { backendRoute } from '../../src/resolve/maps.js'
import { Registry, type HostInfo } from '../../src/resolve/registry.js'
import { DEMO_FOUND, DEMO_MISSES, MAILHOST } from '../cases/demo-cases.js'
import { DEMO_BACKENDS, demoDirectory, type MemoryDirectory } from '../fakes/memory-directory.js'
import { lookupStack } from '../fakes/lookup-stack.js'

export const makeLookups = (dir: MemoryDirectory, deadlineMs = 1000) => lookupStack(dir, { deadlineMs, cache: { maxEntries: 100 } })

const route = (id: 'mx1' | 'mx2') => backendRoute(DEMO_BACKENDS.find((b) => b.id === id) as HostInfo)

t.test('demo case table: found', async (t) => {
  const { lookups } = makeLookups(demoDirectory())
  for (const c of DEMO_FOUND) {
    const tr = await lookups.lookup('transport', c.key, 'test')
    t.same(tr.answer, { outcome: 'found', value: route(c.owner!) }, `transport ${c.key} (${c.why})`)
    const rc = await lookups.lookup('recipient', c.key, 'test')
    t.same(rc.answer, { outcome: 'found', value: MAILHOST[c.owner!] }, `recipient ${c.key}`)
    const al = await lookups.lookup('alias', c.key, 'test')
    if (c.alias) t.same(al.answer, { outcome: 'found', value: c.alias }, `alias ${c.key}`)
    else t.equal(al.answer.outcome, 'notfound', `no rewrite for ${c.key}`)
    const own = await lookups.lookup(`local/${c.owner!}`, c.key, 'test')
    if (c.local) t.same(own.answer, { outcome: 'found', value: route(c.owner!) }, `local/${c.owner!} ${c.key}: the backend's own route`)
    else t.equal(own.answer.outcome, 'notfound', `local/${c.owner!} ${c.key}`)
    const other = await lookups.lookup(`local/${c.owner === 'mx1' ? 'mx2' : 'mx1'}`, c.key, 'test')
    t.equal(other.answer.outcome, 'notfound', `not local on the other backend: ${c.key}`)
  }
})

t.test('demo case table: misses, and which need no directory query', async (t) => {
  const dir = demoDirectory()
  const { lookups } = makeLookups(dir)
  for (const c of DEMO_MISSES) {
    for (const map of ['transport', 'recipient', 'alias', 'local/mx1']) {
      const r = await lookups.lookup(map, c.key, 'test')
      t.equal(r.answer.outcome, 'notfound', `${map} ${JSON.stringify(c.key).slice(0, 40)} (${c.why})`)
    }
  }
  dir.queries.length = 0
  for (const k of ['*', 'example.org', '', 'someone@unserved.test', 'x'.repeat(300)]) {
    const r = await lookups.lookup('transport', k, 'test')
    t.equal(r.layer, 'rules', `answered by rules: ${k.slice(0, 20)}`)
  }
  t.same(dir.queries, [], 'no directory query for non-address keys and unserved domains')
})

t.test('bad map name and undecodable key', async (t) => {
  const { lookups } = makeLookups(demoDirectory())
  t.match((await lookups.lookup('mailbox', 'alice@example.org', 't')).answer, { outcome: 'perm' })
  t.match((await lookups.lookup('local/mx9', 'alice@example.org', 't')).answer, { outcome: 'perm' })
  t.match((await lookups.lookup('local/', 'alice@example.org', 't')).answer, { outcome: 'perm' })
  t.match((await lookups.lookup('transport', null, 't')).answer, { outcome: 'notfound' })
})

t.test('second lookup of a key, any map, is a cache hit', async (t) => {
  const dir = demoDirectory()
  const { lookups } = makeLookups(dir)
  t.equal((await lookups.lookup('transport', 'bob@example.org', 't')).layer, 'directory')
  t.equal((await lookups.lookup('recipient', 'BOB@example.org', 't')).layer, 'cache')
  t.same(dir.queries, ['bob@example.org'])
})

t.test('lookupCached answers what lookup would when no waiting is needed, and otherwise starts nothing', async (t) => {
  const dir = demoDirectory()
  const { lookups, cache } = makeLookups(dir)
  t.equal(lookups.lookupCached('transport', 'bob@example.org', 't'), undefined, 'a cold key: not answered now')
  t.same(dir.queries, [], 'and not asked of the directory')
  t.same([cache.stats.hits, cache.stats.misses], [0, 0], 'nor counted')
  const cold = await lookups.lookup('transport', 'bob@example.org', 't')
  t.equal(cold.layer, 'directory')
  const hit = lookups.lookupCached('transport', 'BOB@example.org', 't')
  t.match(hit, { answer: cold.answer, layer: 'cache' }, 'a fresh entry: answered now, from the cache')
  t.same([cache.stats.hits, cache.stats.misses], [1, 1])
  t.match(lookups.lookupCached('mailbox', 'bob@example.org', 't'), { answer: { outcome: 'perm' }, layer: 'rules' }, 'bad map name')
  t.match(lookups.lookupCached('transport', '*', 't'), { answer: { outcome: 'notfound' }, layer: 'rules' }, 'not an address')
  t.match(lookups.lookupCached('transport', null, 't'), { answer: { outcome: 'notfound' }, layer: 'rules' }, 'undecodable key')
  t.match(lookups.lookupCached('transport', 'x@unserved.test', 't'), { answer: { outcome: 'notfound' }, layer: 'rules' }, 'unserved domain')
  t.same(dir.queries, ['bob@example.org'], 'one directory query in all')
})

t.test('local/<id> on an SMTP-routed backend answers its LMTP, never the SMTP route back to itself', async (t) => {
  const registry = new Registry(
    [{ name: 'example.org' }],
    [{ id: 'mx3', mailHosts: ['mx3.example.org'], address: '2001:db8::3', route: 'smtp', ports: { lmtp: 2424, smtp: 2525, imap: 143, pop3: 110 } }],
  )
  const { lookups } = lookupStack(demoDirectory().account('dave', ['dave@example.org'], 'mx3.example.org'), { registry })
  t.same((await lookups.lookup('transport', 'dave@example.org', 't')).answer, { outcome: 'found', value: 'smtp:[ipv6:2001:db8::3]:2525' })
  t.same((await lookups.lookup('local/mx3', 'dave@example.org', 't')).answer, { outcome: 'found', value: 'lmtp:inet:[ipv6:2001:db8::3]:2424' })
})
