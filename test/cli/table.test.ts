// mailhostctl's human-readable output: table and key/value layout, escaping, and each command
// group's rendering of the daemon's objects.

import t from 'tap'
import { keyValue, list, printable, table, text, yesNo } from '../../src/cli/table.js'
import { accountBlock, accountTable, type Account } from '../../src/cli/commands/accounts.js'
import { backendBlock, backendTable, type Backend } from '../../src/cli/commands/backends.js'
import { domainBlock, domainTable } from '../../src/cli/commands/domains.js'
import { moveBlock, moveTable, type Move } from '../../src/cli/commands/moves.js'
import { auditTable } from '../../src/cli/commands/audit.js'
import { placementText } from '../../src/cli/commands/placement.js'
import { lookupText } from '../../src/cli/commands/lookup.js'

t.test('table: columns aligned, two spaces apart, numbers right-aligned, no trailing blanks', async (t) => {
  const rows = [
    { name: 'a', n: 5, note: '' },
    { name: 'longer', n: 12345, note: 'x' },
  ]
  const out = table(rows, [
    { header: 'NAME', value: (r) => r.name },
    { header: 'N', value: (r) => String(r.n), align: 'right' },
    { header: 'NOTE', value: (r) => r.note },
  ])
  t.equal(out, 'NAME        N  NOTE\na           5\nlonger  12345  x\n')
  t.equal(table([], [{ header: 'ONLY', value: () => '' }]), 'ONLY\n', 'no rows: the header')
})

t.test('table: many rows (no argument-count limit)', async (t) => {
  const rows = Array.from({ length: 200_000 }, (_, i) => i)
  const out = table(rows, [{ header: 'I', value: (i) => String(i), align: 'right' }])
  t.equal(out.split('\n')[1], '     0')
})

t.test('control characters cannot break the layout or reach the terminal', async (t) => {
  t.equal(printable('a\nb\tc\rd\x1b[31me\x7f\x9bf'), 'a\\nb\\tc\\rd\\x1b[31me\\x7f\\x9bf')
  t.equal(printable('bücher.example'), 'bücher.example', 'non-ASCII letters stay')
  t.equal(table([{ v: 'x\ny' }], [{ header: 'V', value: (r) => r.v }]), 'V\nx\\ny\n')
})

t.test('keyValue: values aligned; several lines continue under the first', async (t) => {
  t.equal(keyValue([['a', '1'], ['longer', '2'], ['empty', '']]), 'a       1\nlonger  2\nempty\n')
  t.equal(keyValue([['detail', 'line 1\nline 2\n\n'], ['id', '7']]), 'detail  line 1\n        line 2\nid      7\n')
  t.equal(keyValue([['k', 'a\x1bb\nc']]), 'k  a\\x1bb\n   c\n')
})

t.test('list, text, yesNo', async (t) => {
  t.equal(list(['a', 'b']), 'a, b')
  t.equal(list([]), '-')
  t.equal(list(null), '-')
  t.equal(list(undefined), '-')
  t.equal(text(null), '-')
  t.equal(text(undefined), '-')
  t.equal(text(0), '0')
  t.equal(text(''), '')
  t.equal(yesNo(true), 'yes')
  t.equal(yesNo(false), 'no')
})

const alice: Account = {
  address: 'alice@example.org',
  backend: 'mx1',
  mailHost: 'mx1.example.org',
  status: 'active',
  aliases: ['alice.liddell@example.org', 'al@example.org'],
  sendAs: [],
  hasPassword: true,
  moving: false,
}

t.test('accounts', async (t) => {
  const orphan = { ...alice, address: 'bob@example.org', backend: null, mailHost: 'old.example.org', aliases: [], hasPassword: false, moving: true }
  t.equal(
    accountTable([alice, orphan]),
    'ADDRESS            BACKEND              STATUS  ALIASES  MOVING\n' +
      'alice@example.org  mx1                  active        2  no\n' +
      'bob@example.org    - (old.example.org)  active        0  yes\n',
  )
  t.equal(
    accountBlock(alice),
    'address    alice@example.org\n' +
      'backend    mx1\n' +
      'mail host  mx1.example.org\n' +
      'status     active\n' +
      'aliases    alice.liddell@example.org, al@example.org\n' +
      'send as    -\n' +
      'password   set\n' +
      'moving     no\n',
  )
  t.match(accountBlock(orphan), /^backend {4}-\n/m)
  t.match(accountBlock(orphan), /^password {3}none\n/m)
})

const mx1: Backend = {
  id: 'mx1',
  mailHosts: ['mx1.example.org', 'store1.example.org'],
  address: '10.0.0.11',
  route: 'lmtp',
  ports: { lmtp: 24, smtp: 25, imap: 143, pop3: 110 },
  weight: 1,
  capacity: null,
  adminState: 'active',
  accounts: 1234,
}

const up = (since: string) => ({ state: 'up', since, detail: null })
const down = (since: string, detail: string) => ({ state: 'down', since, detail })

t.test('backends', async (t) => {
  const mx2 = { ...mx1, id: 'mx2', address: '10.0.0.12', weight: 3, capacity: 5000, adminState: 'maintenance', accounts: 7, health: {} }
  const mx3 = {
    ...mx1,
    id: 'mx3',
    address: '10.0.0.13',
    health: { delivery: up('2026-12-01T10:00:00.000Z'), imap: down('2026-12-01T11:00:00.000Z', 'connection failed: ECONNREFUSED'), pop3: down('2026-12-01T11:00:01.000Z', 'no greeting within 2000 ms') },
  }
  const mx4 = { ...mx1, id: 'mx4', address: '10.0.0.14', health: { delivery: up('2026-12-01T10:00:00.000Z'), imap: up('2026-12-01T10:00:00.000Z') } }
  t.equal(
    backendTable([mx1, mx2, mx3, mx4]),
    'ID   ADDRESS    ROUTE  STATE        HEALTH            WEIGHT  CAPACITY  ACCOUNTS\n' +
      'mx1  10.0.0.11  lmtp   active       -                      1         -      1234\n' +
      'mx2  10.0.0.12  lmtp   maintenance  -                      3      5000         7\n' +
      'mx3  10.0.0.13  lmtp   active       down: imap, pop3       1         -      1234\n' +
      'mx4  10.0.0.14  lmtp   active       up                     1         -      1234\n',
    'health: never recorded (or an older daemon), some services down, all up',
  )
  t.equal(
    backendBlock(mx1),
    'id          mx1\n' +
      'mail hosts  mx1.example.org, store1.example.org\n' +
      'address     10.0.0.11\n' +
      'route       lmtp\n' +
      'ports       lmtp 24, smtp 25, imap 143, pop3 110\n' +
      'weight      1\n' +
      'capacity    unlimited\n' +
      'state       active\n' +
      'health      -\n' +
      'accounts    1234\n',
  )
  t.match(
    backendBlock(mx3),
    'state       active\n' +
      'health      delivery up since 2026-12-01T10:00:00.000Z\n' +
      '            imap down since 2026-12-01T11:00:00.000Z: connection failed: ECONNREFUSED\n' +
      '            pop3 down since 2026-12-01T11:00:01.000Z: no greeting within 2000 ms\n' +
      'accounts',
  )
  t.match(backendBlock({ ...mx2, ports: { lmtp: 2424 } }), /^ports {7}lmtp 2424$/m)
  t.match(backendBlock({ ...mx2, ports: { lmtp: 2424 } }), /^capacity {4}5000$/m)
})

t.test('domains', async (t) => {
  const org = { name: 'example.org', affinity: 'mx1' }
  const net = { name: 'example.net', aliasFor: 'example.org', catchAll: null, affinity: null }
  const com = { name: 'example.com', catchAll: ['bob@example.org'] }
  t.equal(
    domainTable([org, net, com]),
    'NAME         ALIAS-FOR    CATCH-ALL        AFFINITY\n' +
      'example.org  -            -                mx1\n' +
      'example.net  example.org  -                -\n' +
      'example.com  -            bob@example.org  -\n',
  )
  t.equal(domainBlock(com), 'name       example.com\nalias for  -\ncatch-all  bob@example.org\naffinity   -\n')
})

const move: Move = {
  id: 17,
  account: 'alice@example.org',
  source: { backend: 'mx1', mailHost: 'mx1.example.org' },
  target: 'mx2',
  state: 'failed',
  detail: 'doveadm: connection refused\nexit 75\n',
  actor: 'ops',
  createdAt: '2026-12-01T10:00:00.000Z',
  updatedAt: '2026-12-01T10:00:02.000Z',
  finishedAt: null,
}

t.test('moves', async (t) => {
  const orphan = { ...move, id: 9, source: { backend: null, mailHost: 'old.example.org' }, state: 'copying' }
  t.equal(
    moveTable([move, orphan]),
    'ID  ACCOUNT            SOURCE           TARGET  STATE    UPDATED\n' +
      '17  alice@example.org  mx1              mx2     failed   2026-12-01T10:00:02.000Z\n' +
      ' 9  alice@example.org  old.example.org  mx2     copying  2026-12-01T10:00:02.000Z\n',
  )
  t.equal(
    moveBlock(move),
    'id        17\n' +
      'account   alice@example.org\n' +
      'source    mx1 (mx1.example.org)\n' +
      'target    mx2\n' +
      'state     failed\n' +
      'actor     ops\n' +
      'created   2026-12-01T10:00:00.000Z\n' +
      'updated   2026-12-01T10:00:02.000Z\n' +
      'finished  -\n' +
      'detail    doveadm: connection refused\n' +
      '          exit 75\n',
    "the hook's output on its own lines",
  )
  t.match(moveBlock(orphan), /^source {4}old\.example\.org$/m)
})

t.test('audit', async (t) => {
  const entry = { id: 120, at: '2026-12-01T10:00:00.000Z', actor: 'ops', action: 'create', subjectType: 'account', subject: 'alice@example.org', before: null, after: {} }
  t.equal(
    auditTable([entry, { ...entry, id: 7, actor: 'config', action: 'update', subjectType: 'backend', subject: 'mx1' }]),
    ' ID  AT                        ACTOR   ACTION  TYPE     SUBJECT\n' +
      '120  2026-12-01T10:00:00.000Z  ops     create  account  alice@example.org\n' +
      '  7  2026-12-01T10:00:00.000Z  config  update  backend  mx1\n',
  )
})

t.test('placement', async (t) => {
  const candidates = [
    { id: 'mx1', accounts: 120, capacity: null, weight: 1, adminState: 'active' },
    { id: 'mx3', accounts: 5, capacity: 10, weight: 1, adminState: 'drain' },
  ]
  t.equal(
    placementText({ ok: true, backend: 'mx1', applied: 'least-used', eligible: ['mx1'], excluded: [{ id: 'mx3', reason: 'drain' }], candidates }),
    'backend   mx1\n' +
      'policy    least-used\n' +
      'eligible  mx1\n' +
      'excluded  mx3 (drain)\n' +
      '\n' +
      'ID   STATE   WEIGHT  CAPACITY  ACCOUNTS\n' +
      'mx1  active       1         -       120\n' +
      'mx3  drain        1        10         5\n',
  )
  t.equal(placementText({ ok: false, reason: 'no eligible backend: mx3 drain', excluded: [{ id: 'mx3', reason: 'drain' }] }), 'backend   none\nreason    no eligible backend: mx3 drain\nexcluded  mx3 (drain)\n')
  t.equal(placementText({ ok: true, backend: 'mx1', applied: 'random', eligible: ['mx1'], excluded: [], candidates: [] }), 'backend   mx1\npolicy    random\neligible  mx1\nexcluded  -\n')
})

t.test('lookup', async (t) => {
  t.equal(
    lookupText({ map: 'transport', key: 'alice@example.org', outcome: 'found', value: 'lmtp:inet:[10.0.0.11]:24', layer: 'stale', elapsedMs: 0.25 }),
    'map      transport\nkey      alice@example.org\noutcome  found\nvalue    lmtp:inet:[10.0.0.11]:24\nlayer    stale cache (directory failing)\ntime     0.250 ms\n',
  )
  t.match(lookupText({ map: 'm', key: 'k', outcome: 'temp', reason: 'directory down', layer: 'mystery', elapsedMs: 3000 }), /^reason {3}directory down\nlayer {4}mystery\n/m)
})
