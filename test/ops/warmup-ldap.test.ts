// cache.warmup with the LDAP directory against a real slapd: a paged search through the service
// account for every entry with a mailHost, each address loaded into the cache; the alias entry
// (no mailHost) is not listed, and is resolved when asked.

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { startSlapd, slapdDirectory } from '../harness/slapd.js'
import { startOpsDaemon } from './daemon.js'

const EXTRA = 120

function people(n: number): string {
  return Array.from(
    { length: n },
    (_, i) => `dn: uid=warm${i},ou=people,dc=example,dc=org
objectClass: inetOrgPerson
objectClass: inetLocalMailRecipient
uid: warm${i}
cn: warm${i}
sn: warm${i}
mail: warm${i}@example.org
mailLocalAddress: warm${i}@example.org
mailLocalAddress: w${i}.alt@example.org
mailHost: ${i % 2 === 0 ? 'mx1' : 'mx2'}.example.org
`,
  ).join('\n')
}

eachPeerSet(t, async (t, set) => {
  t.test('warm-up loads every mailbox address of the LDAP directory', async (t) => {
    const slapd = await startSlapd({ set, extraLdif: [people(EXTRA)] })
    t.teardown(() => slapd.stop())
    const d = await startOpsDaemon(t, {
      directory: slapdDirectory(slapd, { pollInterval: 0 }),
      cache: { warmup: true, ttl: '1h' },
    })
    await d.daemon.warmupDone()
    const done = d.lines().find((l) => l.msg === 'cache warm-up: done')
    t.ok(done, 'final line')
    const total = Number(done?.total)
    // mail and mailLocalAddress name the primary twice: 2 distinct addresses per generated entry.
    t.ok(total >= EXTRA * 2 + 3, `${total} addresses listed`)
    t.match(done, { loaded: total, failed: 0 })
    t.notOk(d.lines().some((l) => l.component === 'ldap-warmup' && l.level === 'warn'), 'no LDAP trouble')

    for (const key of ['warm0@example.org', `w${EXTRA - 1}.alt@example.org`, 'alice@example.org', 'alice.liddell@example.org']) {
      t.match(await d.lookup('transport', key), { outcome: 'found', layer: 'cache' }, `${key} from the cache`)
    }
    t.match(await d.lookup('transport', 'postmaster@example.org'), { outcome: 'found', layer: 'directory' }, 'the alias was not preloaded')
  })
})
