// Acceptance: the demo case table through postmap on the LDAP directory (real slapd).

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { startMailhostd } from '../harness/mailhostd.js'
import { startSlapd, slapdDirectory } from '../harness/slapd.js'
import { checkDemoTable, demoClusterConfig } from './demo-table.js'

eachPeerSet(t, async (t, set) => {
  t.test('LDAP directory on slapd', async (t) => {
    const slapd = await startSlapd({ set })
    t.teardown(() => slapd.stop())
    const m = await startMailhostd({
      ...demoClusterConfig(),
      directory: slapdDirectory(slapd),
    })
    t.teardown(() => m.stop())
    await checkDemoTable(t, m.ports, { set })
    const text = JSON.stringify(m.logs())
    t.notOk(text.includes(slapd.bindPassword), 'the bind password never reaches the log')
  })
})
