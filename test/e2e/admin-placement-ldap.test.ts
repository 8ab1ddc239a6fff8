// Acceptance, LDAP directory: 1,000 accounts per placement policy through the admin API, written
// to a real slapd through directory.ldap.admin (the rootdn here), one slapd per policy, the store
// embedded (PGlite). Presence is an LDAP search of the test's own, bound as the rootdn. The cases
// and what they assert: admin-placement-cases.ts.

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { Client } from 'ldapts'
import { startSlapd, type Slapd, slapdDirectory } from '../harness/slapd.js'
import { CASES, POLICIES, runPlacementCase } from './admin-placement-cases.js'

/** Primary address (mail) -> mailHost of every entry with a mailHost, demo entries included. */
async function readDirectory(slapd: Slapd): Promise<Map<string, string>> {
  const client = new Client({ url: slapd.url, timeout: 10_000, connectTimeout: 5_000 })
  try {
    await client.bind(slapd.rootDN, slapd.rootPassword)
    const { searchEntries } = await client.search(slapd.baseDN, {
      scope: 'sub',
      filter: '(mailHost=*)',
      attributes: ['mail', 'mailHost'],
      paged: { pageSize: 500 },
    })
    const one = (v: unknown): string => {
      const first = Array.isArray(v) ? v[0] : v
      if (Array.isArray(v) && v.length !== 1) throw new Error(`expected one value, got ${JSON.stringify(v)}`)
      return String(first).toLowerCase()
    }
    return new Map(searchEntries.map((e) => [one(e.mail), one(e.mailHost)]))
  } finally {
    await client.unbind()
  }
}

// 8,000 creates through the API, over both peer sets, is this suite's heaviest file: 285 s (LDAP)
// and 158 s (SQL) on a quiet 2-core VM, past .taprc's 600 s when the machine is busy (the two
// placement files run side by side). Twenty minutes keeps the limit a hang detector, not a race.
t.setTimeout(1_200_000)

eachPeerSet(t, async (t, set) => {
  t.test('placement at scale, LDAP directory on slapd', async (t) => {
    for (const policy of POLICIES) {
      await t.test(policy, async (t) => {
        const slapd = await startSlapd({ set })
        t.teardown(() => slapd.stop())
        await runPlacementCase(t, CASES[policy], {
          set,
          config: {
            directory: slapdDirectory(slapd, { admin: { bindDN: slapd.rootDN, bindPassword: slapd.rootPassword } }),
          },
          concurrency: 8,
          readDirectory: () => readDirectory(slapd),
        })
      })
    }
  })
})
