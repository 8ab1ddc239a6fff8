// One rule for a mailHost: what the config file and the admin API accept as a backend's name is
// exactly what the resolver accepts in a directory entry. A backend named by anything else
// would leave every account placed on it answering a temporary failure for good.

import fc from 'fast-check'
import t from 'tap'
import { Value } from 'typebox/value'
import { validateConfig } from '../../src/config/load.js'
import { BackendCreate, BackendUpdate } from '../../src/http/admin/schemas.js'
import { Resolver } from '../../src/resolve/resolver.js'
import { canonicalAddress } from '../../src/resolve/address.js'
import { isMailHost } from '../../src/resolve/mail-host.js'
import { silentLogger } from '../../src/log.js'
import { DirectoryDataError } from '../../src/errors.js'
import { demoRegistry, MemoryDirectory } from '../fakes/memory-directory.js'
import { ADDRESSES } from '../fakes/lookup-stack.js'

const configAccepts = (h: string) => {
  try {
    validateConfig({ backends: [{ id: 'mx9', address: '10.0.0.9', mailHosts: [h] }] }, {})
    return true
  } catch {
    return false
  }
}
const apiAccepts = (h: string) => {
  const create = Value.Check(BackendCreate, { id: 'mx9', address: '10.0.0.9', mailHosts: [h] })
  const update = Value.Check(BackendUpdate, { mailHosts: [h] })
  if (create !== update) throw new Error(`create and update disagree on ${JSON.stringify(h)}`)
  return create
}
/** What a lookup of an account whose directory entry has this mailHost ends in. */
const resolverAccepts = async (h: string) => {
  const dir = new MemoryDirectory().account('uid=x', ['x@example.org'], h)
  const resolver = new Resolver(dir, demoRegistry, ADDRESSES, silentLogger)
  const addr = canonicalAddress('x@example.org', ADDRESSES)
  if (!addr.ok) throw new Error('unreachable')
  try {
    return (await resolver.resolve(addr)).kind === 'found'
  } catch (e) {
    if (e instanceof DirectoryDataError) return false
    throw e
  }
}

const agree = async (h: string) => {
  const want = isMailHost(h)
  const got = { config: configAccepts(h), api: apiAccepts(h), resolver: await resolverAccepts(h) }
  if (got.config !== want || got.api !== want || got.resolver !== want) throw new Error(`${JSON.stringify(h)}: rule ${want}, ${JSON.stringify(got)}`)
}

t.test('names seen in the review and the usual kinds', async (t) => {
  for (const [h, ok] of [
    ['mx1.example.org', true],
    ['MX1.Example.ORG', true],
    ['mx1', true],
    ['mx_1', true],
    ['10.0.0.11', true],
    ['2001:db8::11', true],
    ['<img src=x>', false],
    ['a\r\nb', false],
    ['a\nb', false],
    ['mx1.example.org\n', false],
    [' mx1', false],
    ['-mx1', false],
    ['.mx1', false],
    ['', false],
    ['mx1/x', false],
    ['ü.example.org', false],
    ['x'.repeat(254), true],
    ['x'.repeat(255), false],
  ] as const) {
    t.equal(isMailHost(h), ok, JSON.stringify(h).slice(0, 40))
    await agree(h)
  }
})

t.test('property: config, admin API and resolver accept exactly the same mailHosts', async () => {
  const chars = fc.constantFrom(...'abcXYZ019_.:-', ' ', '\t', '\r', '\n', '<', '>', '/', '[', ']', '"', "'", '$', '@', 'ü', '\u0000', '\u2028')
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.string({ unit: chars, maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 30 }), fc.string({ unit: chars, minLength: 250, maxLength: 260 })), agree),
    { numRuns: 2000 },
  )
})
