// Acceptance, SQL directory: 1,000 accounts per placement policy through the admin API, with a
// PostgreSQL store (the SQL directory's tables live in it) started by the harness, one database
// per policy. Presence is read from the accounts table directly. The cases and what they assert:
// admin-placement-cases.ts.

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import pg from 'pg'
import { startPostgres } from '../harness/postgres.js'
import { CASES, POLICIES, runPlacementCase } from './admin-placement-cases.js'

// 8,000 creates through the API, over both peer sets, is this suite's heaviest file: 285 s (LDAP)
// and 158 s (SQL) on a quiet 2-core VM, past .taprc's 600 s when the machine is busy (the two
// placement files run side by side). Twenty minutes keeps the limit a hang detector, not a race.
t.setTimeout(1_200_000)

eachPeerSet(t, async (t, set) => {
  t.test('placement at scale, SQL directory on PostgreSQL', async (t) => {
    const server = await startPostgres({ set })
    t.teardown(() => server.stop())
    for (const policy of POLICIES) {
      await t.test(policy, async (t) => {
        const url = await server.createDatabase(`placement_${policy.replace('-', '_')}`)
        await runPlacementCase(t, CASES[policy], {
          set,
          config: { directory: { type: 'sql' }, store: { url } },
          concurrency: 8,
          readDirectory: async () => {
            const client = new pg.Client({ connectionString: url })
            await client.connect()
            try {
              const { rows } = await client.query<{ address: string; mailhost: string }>('select address, mailhost from accounts')
              return new Map(rows.map((r) => [r.address, r.mailhost]))
            } finally {
              await client.end()
            }
          },
        })
      })
    }
  })
})
