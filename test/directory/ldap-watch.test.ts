// Changes made in a real slapd behind mailhostd's back are reported by polling modifyTimestamp:
// a modified mailHost, an added address, a new entry, each once; and slapd dying does not break
// the watcher, which reports again once slapd is back.

import t, { type Test } from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { generalizedTime, LdapWatcher, parseGeneralizedTime } from '../../src/directory/ldap-watch.js'
import { createLogger } from '../../src/log.js'
import { ldapConfig, startSlapd, type Slapd } from '../harness/slapd.js'

const ADDRESSES = { extensionDelimiters: '+', foldLocalPart: true }
const INTERVAL = '200ms'
const ALICE = 'uid=alice,ou=people,dc=example,dc=org'
const BOB = 'uid=bob,ou=people,dc=example,dc=org'
const DAVE = 'uid=dave,ou=people,dc=example,dc=org'

interface Report {
  readonly addresses: string[]
  readonly ids: string[]
}

function captureLog() {
  let text = ''
  const logger = createLogger('debug', { write: (s: string) => void (text += s) })
  return { logger, text: () => text }
}

async function until(what: string, ok: () => boolean, ms = 10_000, every = 20): Promise<void> {
  const deadline = Date.now() + ms
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(every)
  }
}

function watch(t: Test, slapd: Slapd, overrides: Record<string, unknown> = {}) {
  const log = captureLog()
  const reports: Report[] = []
  let resyncs = 0
  const watcher = new LdapWatcher(
    ldapConfig(slapd, { pollInterval: INTERVAL, timeout: '1s', connectTimeout: '500ms', ...overrides }),
    ADDRESSES,
    log.logger,
    (addresses, ids) => reports.push({ addresses, ids }),
    { onResync: () => resyncs++ },
  )
  watcher.start()
  t.teardown(() => watcher.stop())
  const reportsOf = (dn: string) => reports.filter((r) => r.ids.includes(dn))
  return { watcher, reports, reportsOf, log, resyncs: () => resyncs }
}

eachPeerSet(t, async (t, set) => {
  t.test('GeneralizedTime both ways', async (t) => {
    t.equal(generalizedTime(Date.UTC(2026, 11, 1, 11, 22, 33, 999)), '20261201112233Z')
    t.equal(parseGeneralizedTime('20261201112233Z'), Date.UTC(2026, 11, 1, 11, 22, 33))
    t.equal(parseGeneralizedTime('20261201112233.25Z'), Date.UTC(2026, 11, 1, 11, 22, 33))
    t.equal(parseGeneralizedTime('20261201132233+0200'), Date.UTC(2026, 11, 1, 11, 22, 33))
    t.equal(parseGeneralizedTime('20261201112233'), undefined, 'no zone: not a time we can place')
    t.equal(parseGeneralizedTime('yesterday'), undefined)
  })

  t.test('changes made in slapd are reported within a poll, each once', async (t) => {
    const slapd = await startSlapd({ set })
    t.teardown(() => slapd.stop())
    const w = watch(t, slapd)
    // The demo entries were loaded just now, inside the start margin: the first poll reports them.
    await until('the first poll', () => w.reportsOf(ALICE).length === 1)
    t.ok(w.reports.flatMap((r) => r.ids).includes('cn=postmaster,ou=aliases,dc=example,dc=org'), 'aliases too')
    const settled = w.reports.length

    await t.test("a modified mailHost: the entry's DN and all its addresses", async (t) => {
      await slapd.ldapmodify(`dn: ${ALICE}\nchangetype: modify\nreplace: mailHost\nmailHost: mx2.example.org\n`)
      await until('the report', () => w.reportsOf(ALICE).length === 2)
      const r = w.reportsOf(ALICE)[1]!
      t.same(r.ids, [ALICE])
      t.same([...r.addresses].sort(), ['alice.liddell@example.org', 'alice@example.org'])
    })

    await t.test('an added mailLocalAddress, canonical', async (t) => {
      await slapd.ldapmodify(`dn: ${BOB}\nchangetype: modify\nadd: mailLocalAddress\nmailLocalAddress: Robert@EXAMPLE.org\n`)
      await until('the report', () => w.reportsOf(BOB).length === 2)
      t.same([...w.reportsOf(BOB)[1]!.addresses].sort(), ['bob@example.org', 'robert@example.org'])
    })

    await t.test('an added entry', async (t) => {
      await slapd.ldapadd(
        [
          `dn: ${DAVE}`,
          'objectClass: inetOrgPerson',
          'objectClass: inetLocalMailRecipient',
          'uid: dave',
          'cn: Dave',
          'sn: Dave',
          'mail: dave@example.org',
          'mailLocalAddress: dave@example.org',
          'mailHost: mx1.example.org',
          '',
        ].join('\n'),
      )
      await until('the report', () => w.reportsOf(DAVE).length === 1)
      t.same(w.reportsOf(DAVE)[0], { addresses: ['dave@example.org'], ids: [DAVE] })
    })

    await t.test('a change right after a reported one is reported too, even within the same second', async (t) => {
      // modifyTimestamp has whole seconds; entryCSN tells the two changes apart.
      const before = w.reportsOf(ALICE).length
      await slapd.ldapmodify(`dn: ${ALICE}\nchangetype: modify\nreplace: mailHost\nmailHost: mx1.example.org\n`)
      await until('the first report', () => w.reportsOf(ALICE).length === before + 1)
      await slapd.ldapmodify(`dn: ${ALICE}\nchangetype: modify\nreplace: mailHost\nmailHost: mx2.example.org\n`)
      await until('the second report', () => w.reportsOf(ALICE).length === before + 2)
      t.pass()
    })

    await t.test('nothing is reported twice', async (t) => {
      const count = w.reports.length
      await sleep(1000) // five intervals
      t.equal(w.reports.length, count, 'no report without a change')
      const dns = w.reports.slice(settled).flatMap((r) => r.ids)
      t.ok(dns.length >= 4, 'the changes above were reported')
    })
  })

  t.test('slapd dies and comes back: no throw, a warning, and reports again', async (t) => {
    const slapd = await startSlapd({ set })
    t.teardown(() => slapd.stop())
    const w = watch(t, slapd)
    await until('the first poll', () => w.reportsOf(ALICE).length === 1)
    await slapd.kill()
    await until('the warning', () => /polling for changes failed/.test(w.log.text()))
    await sleep(600) // a few failed polls
    await slapd.restart()
    await slapd.ldapmodify(`dn: ${BOB}\nchangetype: modify\nreplace: mailHost\nmailHost: mx1.example.org\n`)
    await until('the report after the restart', () => w.reportsOf(BOB).length === 2)
    await until('the recovery log line', () => /polling works again/.test(w.log.text()))
    t.equal(w.log.text().match(/polling for changes failed/g)?.length, 1, 'the warning is not repeated every poll')
    t.notMatch(w.log.text(), new RegExp(slapd.bindPassword), 'no password in the log')
  })

  t.test("more changed entries than the server's size limit: a resync, then normal reports", async (t) => {
    // slapd's default size limit is 500 entries for the service account.
    const many = Array.from({ length: 600 }, (_, i) =>
      [`dn: uid=bulk${i},ou=people,dc=example,dc=org`, 'objectClass: inetOrgPerson', 'objectClass: inetLocalMailRecipient', `uid: bulk${i}`, 'cn: Bulk', 'sn: Bulk', `mailLocalAddress: bulk${i}@example.org`, 'mailHost: mx1.example.org', ''].join('\n'),
    )
    const slapd = await startSlapd({ set, extraLdif: [many.join('\n')] })
    t.teardown(() => slapd.stop())
    const w = watch(t, slapd)
    await until('the resync', () => w.resyncs() >= 1)
    t.match(w.log.text(), /size limit/)
    // A change made while the bulk is still inside the polls' look-back window is covered: either
    // reported, or followed by a resync (the whole cache dropped after it). Which one depends on
    // whether it landed in the same second as the bulk.
    await slapd.ldapmodify(`dn: ${BOB}\nchangetype: modify\nreplace: mailHost\nmailHost: mx1.example.org\n`)
    const atBob = w.resyncs()
    await until('the change covered', () => w.reportsOf(BOB).length === 1 || w.resyncs() > atBob, 30_000)
    // Polls reach back behind the resync point for a while and resync again while the bulk is
    // inside that window; once it has left, changes are reported one by one again.
    let quiet = -1
    await until(
      'the bulk to leave the look-back window',
      () => {
        const now = w.resyncs()
        const settled = now === quiet
        quiet = now
        return settled
      },
      30_000,
      2_000,
    )
    const resyncs = w.resyncs()
    const settledAt = w.reports.length
    await slapd.ldapmodify(`dn: ${ALICE}\nchangetype: modify\nreplace: mailHost\nmailHost: mx2.example.org\n`)
    await until('the change after that', () => w.reportsOf(ALICE).length === 1)
    t.equal(w.resyncs(), resyncs, 'no more resyncs')
    // The resyncs cover the bulk. On a slow machine slapadd spreads it over several seconds, and
    // the tail that lands behind the last resync point (fewer entries than the size limit) is
    // reported one by one: redundant, harmless, and each entry once. Once settled, never again.
    const bulk = w.reports.flatMap((r) => r.ids.filter((id) => id.startsWith('uid=bulk')))
    t.equal(new Set(bulk).size, bulk.length, 'no bulk entry reported twice')
    t.notOk(
      w.reports.slice(settledAt).some((r) => r.ids.some((id) => id.startsWith('uid=bulk'))),
      'nothing of the bulk reported after it left the look-back window',
    )
  })
})
