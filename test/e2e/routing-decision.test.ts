// Acceptance (issue 14, item 2): one account, every protocol over its real listener, every backend
// state. The daemon runs in-process on PGlite with the demo data; alice@example.org lives on mx1.
// Each protocol's answer is derived from decide() (src/resolve/destination.ts) for that state, so
// the table below says only how a protocol writes a decision, never the decision itself: if a
// protocol decided on its own, it would disagree here in some state.

import { join } from 'node:path'
import t from 'tap'
import { recordHealth } from '../../src/health/health-repo.js'
import { UNAVAILABLE_REASON } from '../../src/login/router.js'
import { decide, type Asker, type Decision } from '../../src/resolve/destination.js'
import { PROBED_SERVICES as HEALTH_SERVICES } from '../../src/resolve/vocabulary.js'
import { startAdminDaemon } from '../admin/daemon.js'
import { Client } from '../server/client.js'
import { connectUnix, HELLO, lookup as dictLookup, readReply } from '../server/dict-peer.js'
import { policyRequest, readAction } from '../server/policy-client.js'

const SECRET = 'routing-decision-secret'
const ALICE = 'alice@example.org'
const PASSWORD = 'wonderland'
const NGINX_WAIT = '3'

const d = await startAdminDaemon(t, {
  listen: { socketmap: { port: 0 }, tcpTable: [], http: { port: 0 }, policy: { port: 0 }, dict: { path: 'dict.sock' } },
  login: { secret: SECRET },
  // Checks on, so recorded states count, but too slow to record anything of their own here.
  health: { interval: '1h', fall: 100 },
  // Moves stay open until the test aborts them.
  admin: { moves: { settle: '1h' } },
})
const { daemon, api } = d
const port = (name: string) => daemon.bound.find((b) => b.name === name)!.port
const http = `http://127.0.0.1:${d.port}`
const unknownMailHost = daemon.config.routing.unknownMailHost

const socketmap = await Client.connect(port('socketmap'))
t.teardown(() => socketmap.destroy())
const policy = await Client.connect(port('policy'))
t.teardown(() => policy.destroy())
const dict = await connectUnix(t, join(d.dir, 'data', 'dict.sock'))
dict.write(HELLO)

async function socketmapQuery(map: string, key: string): Promise<string> {
  const payload = Buffer.from(`${map} ${key}`)
  socketmap.write(Buffer.concat([Buffer.from(`${payload.length}:`), payload, Buffer.from(',')]))
  return socketmap.readNetstring()
}

async function passdb(kind: 'verify' | 'lookup', service: string): Promise<unknown> {
  const r = await fetch(`${http}/v1/dovecot/passdb/${kind}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-auth-key': SECRET },
    body: JSON.stringify({ user: ALICE, service, ...(kind === 'verify' ? { password: PASSWORD, remoteIp: '192.0.2.7' } : {}) }),
  })
  return r.json()
}

async function nginx(headers: Record<string, string>): Promise<Record<string, string>> {
  const r = await fetch(`${http}/v1/nginx/auth`, { headers: { 'x-auth-key': SECRET, 'auth-login-attempt': '1', 'client-ip': '192.0.2.7', ...headers } })
  const out: Record<string, string> = {}
  for (const [k, v] of r.headers) if (k.startsWith('auth-')) out[k] = v
  return out
}

/** One protocol asking: what it sends, and how it writes a decision (absent: it does not route). */
interface Probe {
  readonly ask: () => Promise<unknown>
  readonly asker?: Asker
  readonly expect: (d: Decision) => unknown
}

const route = (d: Decision) => (d.kind === 'destination' ? d : undefined)
const loginReason = (d: Decision) => (d.kind === 'unavailable' ? UNAVAILABLE_REASON[d.reason] : `no login answer for ${d.kind}`)
const passdbAnswer = (nopassword: boolean) => (d: Decision) => {
  const to = route(d)
  if (!to) return { result: 'tempfail', reason: loginReason(d) }
  return { result: 'ok', fields: { proxy: 'y', host: to.address, ...(nopassword ? { nopassword: 'y' } : {}), ...(to.port === undefined ? {} : { port: String(to.port) }) } }
}

/** An nginx login with the right password: routed to the decision's backend, or told to wait. */
const nginxLogin = (protocol: 'imap' | 'pop3'): Probe => ({
  ask: () => nginx({ 'auth-method': 'plain', 'auth-protocol': protocol, 'auth-user': ALICE, 'auth-pass': PASSWORD }),
  asker: { service: protocol },
  expect: (d) => {
    const to = route(d)
    return to ? { 'auth-status': 'OK', 'auth-server': to.address, 'auth-port': String(to.port) } : { 'auth-status': 'Temporary authentication failure, try again later', 'auth-wait': NGINX_WAIT }
  },
})

/** A dict passdb lookup for `service`: the proxy fields (no password to check here), or a failure. */
const dictPassdb = (service: string, asker: Asker): Probe => ({
  ask: async () => {
    dict.write(dictLookup(`shared/passdb/${service}/${ALICE}`, ALICE))
    const r = await readReply(dict)
    return r.code === 'O' ? { code: 'O', fields: JSON.parse(r.fields[0]!) as unknown } : r
  },
  asker,
  expect: (d) => {
    const to = route(d)
    if (!to) return { code: 'F', fields: [loginReason(d)] }
    return { code: 'O', fields: { proxy: 'y', host: to.address, nopassword: 'y', ...(to.port === undefined ? {} : { port: String(to.port) }) } }
  },
})

const PROBES: Readonly<Record<string, Probe>> = {
  'socketmap transport': {
    ask: () => socketmapQuery('transport', ALICE),
    asker: { service: 'transport', unknownMailHost },
    expect: (d) => (route(d) ? `OK ${route(d)!.route}` : `TEMP ${ALICE} is being moved to another backend`),
  },
  'socketmap local/mx1': {
    ask: () => socketmapQuery('local/mx1', ALICE),
    asker: { service: 'local', backend: 'mx1' },
    expect: (d) => (route(d) ? `OK ${route(d)!.route}` : 'NOTFOUND '),
  },
  'socketmap local/mx2': {
    ask: () => socketmapQuery('local/mx2', ALICE),
    asker: { service: 'local', backend: 'mx2' },
    expect: (d) => (route(d) ? `OK ${route(d)!.route}` : 'NOTFOUND '),
  },
  // The policy service never asks where a mailbox lives: the same verdict in every state.
  'policy RCPT': {
    ask: async () => {
      policy.write(policyRequest({ request: 'smtpd_access_policy', protocol_state: 'RCPT', instance: '1', sender: ALICE, recipient: ALICE, sasl_username: ALICE }))
      return readAction(policy)
    },
    expect: () => 'DUNNO',
  },
  'passdb verify imap': { ask: () => passdb('verify', 'imap'), asker: { service: 'imap' }, expect: passdbAnswer(false) },
  'passdb verify pop3': { ask: () => passdb('verify', 'pop3'), asker: { service: 'pop3' }, expect: passdbAnswer(false) },
  'passdb verify submission': { ask: () => passdb('verify', 'submission'), asker: { service: 'login' }, expect: passdbAnswer(false) },
  'passdb lookup lmtp': { ask: () => passdb('lookup', 'lmtp'), asker: { service: 'lmtp' }, expect: passdbAnswer(true) },
  'nginx imap login': nginxLogin('imap'),
  'nginx pop3 login': nginxLogin('pop3'),
  'nginx smtp RCPT': {
    ask: () => nginx({ 'auth-method': 'none', 'auth-protocol': 'smtp', 'auth-user': '', 'auth-pass': '', 'auth-smtp-helo': 'client.example', 'auth-smtp-from': 'MAIL FROM:<>', 'auth-smtp-to': `RCPT TO:<${ALICE}>` }),
    asker: { service: 'nginx-smtp' },
    expect: (d) => {
      const to = route(d)
      return to
        ? { 'auth-status': 'OK', 'auth-server': to.address, 'auth-port': String(to.port) }
        : { 'auth-status': 'Temporary lookup failure, try again later', 'auth-wait': NGINX_WAIT, 'auth-error-code': '451 4.3.0' }
    },
  },
  'dict passdb imap': dictPassdb('imap', { service: 'imap' }),
  'dict passdb submission': dictPassdb('submission', { service: 'login' }),
}

const setAdminState = async (state: string) => t.equal((await api.patch('/v1/backends/mx1', { adminState: state })).status, 200, `mx1 ${state}`)
const setHealth = async (state: 'up' | 'down', services: readonly (typeof HEALTH_SERVICES)[number][]) => {
  for (const service of services) await recordHealth(daemon.store, { backend: 'mx1', service, state, detail: state === 'down' ? 'test' : null, instance: 'test' })
  await daemon.reloadHealth()
}
const setMailHost = async (mailHost: string) => {
  await daemon.store.query('update accounts set mailhost = $1 where address = $2', [mailHost, ALICE])
  await daemon.reloadRegistry()
}
let moveId: number | undefined

/** Each state: how to enter it and leave it, and alice's mailHost while in it. */
const STATES: readonly { name: string; mailHost?: string; enter?: () => Promise<unknown>; leave?: () => Promise<unknown> }[] = [
  { name: 'active' },
  { name: 'drain', enter: () => setAdminState('drain'), leave: () => setAdminState('active') },
  { name: 'maintenance', enter: () => setAdminState('maintenance'), leave: () => setAdminState('active') },
  { name: 'down (every service)', enter: () => setHealth('down', HEALTH_SERVICES), leave: () => setHealth('up', HEALTH_SERVICES) },
  { name: 'imap down', enter: () => setHealth('down', ['imap']), leave: () => setHealth('up', ['imap']) },
  { name: 'delivery down', enter: () => setHealth('down', ['delivery']), leave: () => setHealth('up', ['delivery']) },
  {
    name: 'account moving',
    enter: async () => {
      const r = await api.post('/v1/moves', { target: 'mx2', accounts: [ALICE] })
      t.equal(r.status, 201, 'move started')
      moveId = (r.body as { moves: { id: number }[] }).moves[0]!.id
    },
    leave: async () => t.equal((await api.post(`/v1/moves/${moveId}/abort`)).status, 200, 'move aborted'),
  },
  { name: 'unknown mailHost', mailHost: 'old.example.net', enter: () => setMailHost('old.example.net'), leave: () => setMailHost('mx1.example.org') },
]

for (const state of STATES) {
  await t.test(state.name, async (t) => {
    await state.enter?.()
    const mailbox = { address: ALICE, mailHost: state.mailHost ?? 'mx1.example.org' }
    for (const [name, probe] of Object.entries(PROBES)) {
      const decision = probe.asker ? decide(mailbox, probe.asker as Exclude<Asker, { service: 'local' }>, daemon.registry) : undefined
      t.same(await probe.ask(), probe.expect(decision!), `${name}${decision ? ` (${decision.kind === 'unavailable' ? decision.reason : decision.kind})` : ''}`)
    }
    await state.leave?.()
  })
}

t.test('every state gave some protocol a different decision than active', async (t) => {
  // Guards the table against states that silently did nothing (a failed PATCH, a stale registry).
  const seen = new Set<string>()
  for (const state of STATES) {
    await state.enter?.()
    const mailbox = { address: ALICE, mailHost: state.mailHost ?? 'mx1.example.org' }
    const decisions = Object.values(PROBES).map((p) => (p.asker ? decide(mailbox, p.asker as Exclude<Asker, { service: 'local' }>, daemon.registry) : null))
    // The backend by id: its admin state is in the registry, not in the decision.
    seen.add(JSON.stringify(decisions.map((x) => (x?.kind === 'destination' ? { ...x, backend: x.backend?.id } : x))))
    await state.leave?.()
  }
  // active and drain decide alike (drain only stops placement); every other state differs.
  t.equal(seen.size, STATES.length - 1)
})
