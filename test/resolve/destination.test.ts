// The one routing decision, rule by rule: every asker against every backend state, the order in
// which a login's checks answer, and the map names the one parser accepts.

import t from 'tap'
import { decide, loginService, type Asker, type Decision, type Unavailable } from '../../src/resolve/destination.js'
import { answerFor, parseMapName, type MapName } from '../../src/resolve/maps.js'
import { Registry, type AdminState, type BackendInfo, type ProbedService } from '../../src/resolve/registry.js'

const PORTS = { lmtp: 24, smtp: 25, imap: 143, pop3: 110 }
const MX1: BackendInfo = { id: 'mx1', mailHosts: ['mx1.example.org'], address: '10.0.0.11', route: 'lmtp', ports: PORTS }
const ALICE = { address: 'alice@example.org', mailHost: 'MX1.example.org' }

interface State {
  readonly admin?: AdminState
  readonly down?: readonly ProbedService[]
  readonly moving?: boolean
}

function registry(s: State, backend: BackendInfo = MX1): Registry {
  const health = new Map([[backend.id, new Map((s.down ?? []).map((p) => [p, 'down' as const]))]])
  return new Registry([], [{ ...backend, ...(s.admin ? { adminState: s.admin } : {}) }], s.moving ? [ALICE.address] : [], health)
}

const TRANSPORT: Asker = { service: 'transport', unknownMailHost: 'smtp:[{mailHost}]:25' }
const ASKERS: Readonly<Record<string, Asker>> = {
  transport: TRANSPORT,
  'local/mx1': { service: 'local', backend: 'mx1' },
  'local/mx2': { service: 'local', backend: 'mx2' },
  imap: { service: 'imap' },
  pop3: { service: 'pop3' },
  lmtp: { service: 'lmtp' },
  smtp: { service: 'smtp' },
  submission: { service: 'login' },
  'nginx-smtp': { service: 'nginx-smtp' },
}

const LMTP = 'lmtp:inet:[10.0.0.11]:24'
/** A decision with its backend by id: the backend's admin state is the registry's business. */
type Shown = Exclude<Decision, { kind: 'destination' }> | { kind: 'destination'; backend: string | undefined; address: string; port: number | undefined; route: string }
const shown = (d: Decision): Shown => (d.kind === 'destination' ? { ...d, backend: d.backend?.id } : d)
const to = (port: number | undefined): Shown => ({ kind: 'destination', backend: 'mx1', address: '10.0.0.11', port, route: LMTP })
const AT_MX1: Readonly<Record<string, Shown>> = {
  transport: to(24),
  'local/mx1': to(24),
  'local/mx2': { kind: 'elsewhere' },
  imap: to(143),
  pop3: to(110),
  lmtp: to(24),
  smtp: to(25),
  submission: to(undefined),
  'nginx-smtp': to(25),
}
const no = (reason: Unavailable): Shown => ({ kind: 'unavailable', reason })

/** Each state: what differs from AT_MX1. */
const STATES: readonly { name: string; state: State; differs: Record<string, Shown> }[] = [
  { name: 'active', state: {}, differs: {} },
  { name: 'drain', state: { admin: 'drain' }, differs: {} },
  {
    name: 'maintenance',
    state: { admin: 'maintenance' },
    differs: { imap: no('maintenance'), pop3: no('maintenance'), lmtp: no('maintenance'), smtp: no('maintenance'), submission: no('maintenance'), 'nginx-smtp': no('maintenance') },
  },
  { name: 'imap down', state: { down: ['imap'] }, differs: { imap: no('down') } },
  { name: 'pop3 down', state: { down: ['pop3'] }, differs: { pop3: no('down') } },
  { name: 'delivery down', state: { down: ['delivery'] }, differs: { lmtp: no('down'), smtp: no('down'), 'nginx-smtp': no('down') } },
  {
    name: 'moving',
    state: { moving: true },
    differs: { transport: no('moving'), imap: no('moving'), pop3: no('moving'), lmtp: no('moving'), smtp: no('moving'), submission: no('moving'), 'nginx-smtp': no('moving') },
  },
]

t.test('every asker in every backend state', async (t) => {
  for (const { name, state, differs } of STATES) {
    const r = registry(state)
    for (const [asker, a] of Object.entries(ASKERS)) {
      t.same(shown(decide(ALICE, a as Exclude<Asker, { service: 'local' }>, r)), differs[asker] ?? AT_MX1[asker], `${name}: ${asker}`)
    }
  }
})

t.test('a mailHost naming no backend: transport by the template, local a miss, the rest wait', async (t) => {
  const r = registry({})
  const lost = { address: 'alice@example.org', mailHost: 'old.example.net' }
  t.same(decide(lost, TRANSPORT, r), { kind: 'destination', backend: undefined, address: 'old.example.net', port: undefined, route: 'smtp:[old.example.net]:25' })
  t.same(decide(lost, { service: 'local', backend: 'mx1' }, r), { kind: 'elsewhere' })
  for (const service of ['imap', 'pop3', 'lmtp', 'smtp', 'login', 'nginx-smtp'] as const) {
    t.same(decide(lost, { service }, r), no('unknown-mailhost'), service)
  }
})

t.test('the order of the checks decides the reason a login is told', async (t) => {
  const all = registry({ admin: 'maintenance', down: ['imap', 'delivery'], moving: true })
  t.same(decide(ALICE, { service: 'imap' }, all), no('maintenance'), 'maintenance before health and moves')
  t.same(decide(ALICE, { service: 'imap' }, registry({ down: ['imap'], moving: true })), no('down'), 'health before moves')
  t.same(decide(ALICE, TRANSPORT, all), no('moving'), 'transport looks at moves only')
  t.same(shown(decide(ALICE, { service: 'local', backend: 'mx1' }, all)), to(24), 'local/<id> looks at none of them')
  t.same(decide(ALICE, { service: 'nginx-smtp' }, all), no('moving'), 'nginx smtp: the move first')
})

t.test('backend routes: SMTP front-end route, IPv6 next-hop, nginx needs an IP literal', async (t) => {
  const smtp: BackendInfo = { ...MX1, route: 'smtp', address: '2001:db8::11' }
  const r = registry({}, smtp)
  t.match(decide(ALICE, TRANSPORT, r), { kind: 'destination', port: 25, route: 'smtp:[ipv6:2001:db8::11]:25' })
  t.match(decide(ALICE, { service: 'local', backend: 'mx1' }, r), { kind: 'destination', port: 24, route: 'lmtp:inet:[ipv6:2001:db8::11]:24' }, 'the backend delivers by its LMTP')
  t.match(decide(ALICE, { service: 'nginx-smtp' }, r), { kind: 'destination', address: '2001:db8::11', port: 25 })
  const named = registry({}, { ...MX1, address: 'mx1.internal' })
  t.same(decide(ALICE, { service: 'nginx-smtp' }, named), no('not-ip'))
  t.match(decide(ALICE, { service: 'imap' }, named), { kind: 'destination', address: 'mx1.internal' }, 'logins leave that check to the proxy')
})

t.test('login services as proxies name them', async (t) => {
  t.same(['imap', 'pop3', 'lmtp', 'smtp', 'submission', 'sieve', 'doveadm', 'dict', ''].map(loginService), ['imap', 'pop3', 'lmtp', 'smtp', 'login', 'login', 'login', 'login', 'login'])
})

t.test('map names: MAP_NAMES, and local/<id> for a backend the caller knows', async (t) => {
  const ids = new Set(['mx1'])
  const known = (id: string) => ids.has(id)
  t.same(['transport', 'recipient', 'alias', 'local/mx1'].map((m) => parseMapName(m, known)), ['transport', 'recipient', 'alias', 'local/mx1'])
  t.same(['local/mx2', 'local/', 'Transport', 'virtual', ''].map((m) => parseMapName(m, known)), [undefined, undefined, undefined, undefined, undefined])
})

t.test('untyped callers: an asker with no rule is a bug, a map with no answer a perm', async (t) => {
  t.throws(() => decide(ALICE, { service: 'pop4' } as unknown as Asker as { service: 'imap' }, registry({})), /no routing rule for \{"service":"pop4"\}/)
  const found = { kind: 'found', via: 'account', mailboxes: [{ ...ALICE, id: '1', status: 'active', sendAs: [] }], external: [], rewrite: [] } as const
  t.same(answerFor('virtual' as MapName, found, registry({}), { unknownMailHost: 'smtp:[{mailHost}]:25' }), { outcome: 'perm', reason: 'unknown map virtual' })
})
