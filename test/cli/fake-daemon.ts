// An in-memory stand-in for mailhostd's admin REST API (docs/admin.md), for mailhostctl's
// command tests: the documented endpoints, bearer tokens with roles, idempotency keys, keyset
// pagination and problem+json errors, on node:http. It records every request so that a test
// can check what the CLI sent, and can be told to fail or drop the connection next.
//
// Only the behaviour the CLI can observe is modelled: no placement policy beyond "first active
// backend", no hooks (a move is `copied` at once).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export const ADMIN_TOKEN = 'mh_admin-test-token'
export const READ_TOKEN = 'mh_read-test-token'

export interface Recorded {
  method: string
  path: string
  query: Record<string, string>
  headers: IncomingMessage['headers']
  /** The raw body ('' when none). */
  body: string
  json: unknown
}

interface Account {
  address: string
  backend: string | null
  mailHost: string
  status: string
  aliases: string[]
  sendAs: string[]
  hasPassword: boolean
  moving: boolean
}

interface Domain {
  name: string
  aliasFor?: string | null
  catchAll?: string[] | null
  affinity?: string | null
}

interface Backend {
  id: string
  kind: string
  mailHosts: string[]
  /** Absent for a pool. */
  address?: string
  route: string
  ports: Record<string, number>
  weight: number
  capacity: number | null
  adminState: string
  members?: Member[]
  pinForMs?: number
}

interface Member {
  id: string
  address: string
  ports: Record<string, number>
  weight: number
  adminState: string
  health: Record<string, unknown>
}

interface Pin {
  address: string
  member: string
  explicit: boolean
  pinnedAt: string
  lastSeen: string
}

interface Move {
  id: number
  account: string
  source: { backend: string | null; mailHost: string }
  target: string
  state: string
  detail: string | null
  actor: string
  createdAt: string
  updatedAt: string
  finishedAt: string | null
}

interface AuditEntry {
  id: number
  at: string
  actor: string
  action: string
  subjectType: string
  subject: string
  before: unknown
  after: unknown
}

class Problem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
  ) {
    super(detail)
  }
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  422: 'Unprocessable Entity',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
}

const notFound = (what: string) => new Problem(404, 'MH_NOT_FOUND', `no such ${what}`)
const invalid = (detail: string) => new Problem(400, 'MH_HTTP_VALIDATION', detail)

/** One page of `rest` (the items past the cursor, in order), with `next` when more follow. */
function page<T>(rest: readonly T[], key: string, cursorOf: (t: T) => string | number, limitText: string | undefined) {
  const limit = limitText === undefined ? 100 : Number(limitText)
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw invalid('querystring/limit must be >= 1 and <= 1000')
  const out: Record<string, unknown> = { [key]: rest.slice(0, limit) }
  if (rest.length > limit) out.next = cursorOf(rest[limit - 1]!)
  return out
}

export class FakeDaemon {
  readonly requests: Recorded[] = []
  readonly accounts = new Map<string, Account>()
  readonly domains = new Map<string, Domain>()
  readonly backends = new Map<string, Backend>()
  readonly moves: Move[] = []
  readonly audit: AuditEntry[] = []
  /** Pool pins by pool id, in address order. */
  readonly pins = new Map<string, Pin[]>()
  /** Answers (or drops) the next requests with these, instead of the endpoint's own answer. */
  private readonly overrides: (Problem | 'reset')[] = []
  private readonly idempotency = new Map<string, { body: string; status: number; answer: unknown } | { body: string; refused: Problem }>()
  private server: Server | undefined
  url = ''

  constructor() {
    this.domains.set('example.org', { name: 'example.org', aliasFor: null, catchAll: null, affinity: null })
    this.domains.set('example.net', { name: 'example.net', aliasFor: 'example.org', catchAll: null, affinity: null })
    const backend = (id: string, address: string, adminState = 'active'): Backend => ({
      id,
      kind: 'host',
      mailHosts: [`${id}.example.org`],
      address,
      route: 'lmtp',
      ports: { lmtp: 24, smtp: 25, imap: 143, pop3: 110 },
      weight: 1,
      capacity: null,
      adminState,
    })
    for (const b of [backend('mx1', '10.0.0.11'), backend('mx2', '10.0.0.12'), backend('mx3', '10.0.0.13', 'drain')]) this.backends.set(b.id, b)
  }

  /** The next request is answered with this problem. */
  failNext(status: number, code: string, detail = 'failed on purpose'): void {
    this.overrides.push(new Problem(status, code, detail))
  }

  /** The next request's connection is closed without an answer. */
  resetNext(): void {
    this.overrides.push('reset')
  }

  /** Adds accounts directly, bypassing the API and the audit log. */
  seedAccounts(n: number, prefix = 'user', backend = 'mx1'): void {
    for (let i = 0; i < n; i++) this.putAccount(`${prefix}${String(i).padStart(3, '0')}@example.org`, backend)
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res))
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
    return this
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections()
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()))
  }

  /** Recorded requests since the last call (and forgets them). */
  take(): Recorded[] {
    return this.requests.splice(0)
  }

  private putAccount(address: string, backend: string, fields: Partial<Account> = {}): Account {
    const b = this.backends.get(backend)
    const a: Account = { address, backend, mailHost: b?.mailHosts[0] ?? backend, status: 'active', aliases: [], sendAs: [], hasPassword: false, moving: false, ...fields }
    this.accounts.set(address, a)
    return a
  }

  /** /v1/pools/:id[/members[/:member] | /flush | /move-user | /pins]: members and pins of a pool backend. */
  private pools(actor: string, m: string | undefined, id: string, rest: string[], q: Record<string, string | undefined>, b: Record<string, unknown>): [number, unknown] {
    const pool = this.backends.get(id)
    if (pool?.kind !== 'pool') throw notFound('pool')
    const members = pool.members!
    const pins = this.pins.get(id) ?? []
    const [what, memberId] = rest
    const memberOf = (mid: unknown) => {
      const x = members.find((mm) => mm.id === mid)
      if (!x) throw notFound('member')
      return x
    }
    if (what === undefined && m === 'GET') {
      const eligible = members.filter((x) => x.adminState === 'active' && x.weight > 0)
      const total = eligible.reduce((sum, x) => sum + x.weight, 0)
      return [
        200,
        {
          id,
          mailHosts: pool.mailHosts,
          route: pool.route,
          ports: pool.ports,
          adminState: pool.adminState,
          pinForMs: pool.pinForMs,
          accounts: [...this.accounts.values()].filter((a) => a.backend === id).length,
          pins: pins.length,
          members: members.map((x) => ({
            ...x,
            eligible: eligible.includes(x),
            pins: pins.filter((p) => p.member === x.id).length,
            share: eligible.includes(x) ? Math.round((x.weight / total) * 10_000) / 100 : 0,
          })),
        },
      ]
    }
    if (what === 'members' && memberId === undefined && m === 'POST') {
      if (members.some((x) => x.id === b.id) || this.backends.has(String(b.id))) throw new Problem(409, 'MH_CONFLICT', `${String(b.id)} already names a server`)
      const x = { weight: 1, adminState: 'active', health: {}, ...(b as object), ports: { ...pool.ports, ...(b.ports as object) } } as Member
      members.push(x)
      this.record(actor, 'create', 'pool', id, null, { member: x })
      return [201, x]
    }
    if (what === 'members' && m === 'PATCH') {
      const x = memberOf(memberId)
      const before = { ...x }
      Object.assign(x, b)
      this.record(actor, 'update', 'pool', id, { member: before }, { member: x })
      return [200, x]
    }
    if (what === 'members' && m === 'DELETE') {
      const x = memberOf(memberId)
      members.splice(members.indexOf(x), 1)
      this.pins.set(id, pins.filter((p) => p.member !== x.id))
      return [204, undefined]
    }
    if (what === 'flush' && m === 'POST') {
      if (b.member !== undefined) memberOf(b.member)
      const keep = pins.filter((p) => (b.member !== undefined && p.member !== b.member) || (b.user !== undefined && p.address !== b.user))
      this.pins.set(id, keep)
      return [200, { dropped: pins.length - keep.length }]
    }
    if (what === 'move-user' && m === 'POST') {
      const target = memberOf(b.member)
      const user = String(b.user).toLowerCase()
      const old = pins.find((p) => p.address === user)
      const at = new Date(Date.UTC(2026, 11, 1, 10, 0, 0)).toISOString()
      this.pins.set(id, [...pins.filter((p) => p !== old), { address: user, member: target.id, explicit: true, pinnedAt: at, lastSeen: at }].sort((x, y) => (x.address < y.address ? -1 : 1)))
      const kick = b.kick === true ? (old ? { kicked: true } : { kicked: false, reason: 'no previous pin: no member to kick on' }) : {}
      return [200, { user, member: target.id, previous: old?.member ?? null, ...kick }]
    }
    if (what === 'pins' && m === 'GET') {
      if (q.member !== undefined) memberOf(q.member)
      const list = pins.filter((p) => (q.member === undefined || p.member === q.member) && (q.after === undefined || p.address > q.after))
      return [200, page(list, 'pins', (p) => p.address, q.limit)]
    }
    throw new Problem(404, 'MH_HTTP_NOT_FOUND', 'no such route')
  }

  private record(actor: string, action: string, subjectType: string, subject: string, before: unknown, after: unknown): void {
    this.audit.push({ id: this.audit.length + 1, at: new Date(Date.UTC(2026, 11, 1, 10, 0, this.audit.length)).toISOString(), actor, action, subjectType, subject, before, after })
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const body = Buffer.concat(chunks).toString('utf8')
    const url = new URL(req.url ?? '/', 'http://fake')
    let json: unknown
    try {
      json = body === '' ? undefined : JSON.parse(body)
    } catch {
      json = undefined
    }
    this.requests.push({ method: req.method ?? '', path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers, body, json })
    const override = this.overrides.shift()
    if (override === 'reset') {
      req.socket.destroy()
      return
    }
    try {
      if (override) throw override
      if (body !== '' && json === undefined) throw invalid('body is not JSON')
      const [status, answer, headers] = this.route(req, url, json, body)
      res.writeHead(status, { ...(answer === undefined ? {} : { 'content-type': 'application/json' }), ...headers })
      res.end(answer === undefined ? undefined : JSON.stringify(answer))
    } catch (e) {
      const p = e instanceof Problem ? e : new Problem(500, 'MH_INTERNAL', String(e))
      res.writeHead(p.status, { 'content-type': 'application/problem+json' })
      res.end(JSON.stringify({ type: 'about:blank', title: TITLES[p.status] ?? 'Error', status: p.status, detail: p.detail, code: p.code }))
    }
  }

  private actor(req: IncomingMessage, path: string): string {
    if (path === '/v1/lookup') return 'anonymous'
    const auth = req.headers.authorization
    const token = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined
    const role = token === ADMIN_TOKEN ? 'admin' : token === READ_TOKEN ? 'read' : undefined
    if (!role) throw new Problem(401, 'MH_UNAUTHORIZED', 'a valid bearer token is required')
    if (role === 'read' && req.method !== 'GET') throw new Problem(403, 'MH_FORBIDDEN', 'this token may only read')
    return role === 'admin' ? 'ops' : 'viewer'
  }

  private route(req: IncomingMessage, url: URL, json: unknown, raw: string): [number, unknown, Record<string, string>?] {
    const actor = this.actor(req, url.pathname)
    const q = Object.fromEntries(url.searchParams) as Record<string, string | undefined>
    const b = (json ?? {}) as Record<string, unknown>
    const parts = url.pathname.split('/').slice(1).map(decodeURIComponent)
    if (parts[0] !== 'v1') throw new Problem(404, 'MH_HTTP_NOT_FOUND', 'no such route')
    const [, kind, id, verb] = parts
    const m = req.method
    if (kind === 'lookup' && m === 'GET') {
      const a = this.accounts.get(q.key ?? '')
      return [200, a ? { map: q.map, key: q.key, outcome: 'found', value: a.mailHost, layer: 'directory', elapsedMs: 1.5 } : { map: q.map, key: q.key, outcome: 'notfound', reason: 'no such address', layer: 'directory', elapsedMs: 1.5 }]
    }
    if (kind === 'accounts') {
      if (id === undefined && m === 'GET') {
        const list = [...this.accounts.values()]
          .filter((a) => (!q.domain || a.address.endsWith(`@${q.domain}`)) && (!q.backend || a.backend === q.backend) && (!q.status || a.status === q.status))
          .filter((a) => q.after === undefined || a.address > q.after)
          .sort((x, y) => (x.address < y.address ? -1 : 1))
        return [200, page(list, 'accounts', (a) => a.address, q.limit)]
      }
      if (id === undefined && m === 'POST') return this.idempotent(req, actor, raw, () => this.createAccount(actor, b))
      const a = this.accounts.get(id ?? '')
      if (!a) throw notFound('account')
      if (m === 'GET') return [200, a]
      if (a.moving) throw new Problem(409, 'MH_ACCOUNT_MOVING', `${a.address} is being moved`)
      if (m === 'PATCH') {
        const before = { ...a }
        if ('password' in b) a.hasPassword = b.password !== null
        if (typeof b.status === 'string') a.status = b.status
        if (b.aliases !== undefined) a.aliases = b.aliases as string[]
        if (b.sendAs !== undefined) a.sendAs = b.sendAs as string[]
        this.record(actor, 'update', 'account', a.address, before, { ...a, ...('password' in b ? { password: '(changed)' } : {}) })
        return [200, a]
      }
      if (m === 'DELETE') {
        this.accounts.delete(a.address)
        this.record(actor, 'delete', 'account', a.address, a, null)
        return [204, undefined]
      }
    }
    if (kind === 'domains') {
      if (id === undefined && m === 'GET') return [200, { domains: [...this.domains.values()] }]
      if (id === undefined && m === 'POST') {
        if (typeof b.name !== 'string') throw invalid('body must have required property name')
        if (this.domains.has(b.name)) throw new Problem(409, 'MH_CONFLICT', `domain ${b.name} exists`)
        const d: Domain = { name: b.name, aliasFor: (b.aliasFor as string) ?? null, catchAll: (b.catchAll as string[]) ?? null, affinity: (b.affinity as string) ?? null }
        this.domains.set(d.name, d)
        this.record(actor, 'create', 'domain', d.name, null, d)
        return [201, d]
      }
      const d = this.domains.get(id ?? '')
      if (!d) throw notFound('domain')
      if (m === 'GET') return [200, d]
      if (m === 'PATCH') {
        Object.assign(d, b)
        return [200, d]
      }
      if (m === 'DELETE') {
        if ([...this.accounts.keys()].some((a) => a.endsWith(`@${d.name}`))) throw new Problem(409, 'MH_CONFLICT', `domain ${d.name} still has accounts`)
        this.domains.delete(d.name)
        return [204, undefined]
      }
    }
    if (kind === 'backends') {
      const withCount = (x: Backend) => ({ ...x, accounts: [...this.accounts.values()].filter((a) => a.backend === x.id).length })
      if (id === undefined && m === 'GET') return [200, { backends: [...this.backends.values()].map(withCount) }]
      if (id === undefined && m === 'POST') {
        const pool = b.kind === 'pool'
        if (typeof b.id !== 'string' || (pool ? !Array.isArray(b.members) : typeof b.address !== 'string')) throw invalid('body must have required properties id, address (a host) or members (a pool)')
        if (this.backends.has(b.id)) throw new Problem(409, 'MH_CONFLICT', `backend ${b.id} exists`)
        const ports = { lmtp: 24, smtp: 25, imap: 143, pop3: 110, ...(b.ports as object) }
        const { pinFor: _pinFor, ...fields } = b
        const x: Backend = {
          kind: 'host',
          mailHosts: [b.id],
          route: 'lmtp',
          weight: 1,
          capacity: null,
          adminState: 'active',
          ...(fields as object),
          ports,
          ...(pool ? { pinForMs: 900_000, members: (b.members as { id: string; address: string }[]).map((m) => ({ weight: 1, adminState: 'active', health: {}, ...m, ports })) } : {}),
        } as unknown as Backend
        this.backends.set(x.id, x)
        return [201, withCount(x)]
      }
      const x = this.backends.get(id ?? '')
      if (!x) throw notFound('backend')
      if (m === 'GET') return [200, withCount(x)]
      // Merges `ports` with the current ones, as mailhostd does.
      if (m === 'PATCH') {
        Object.assign(x, { ...b, ports: { ...x.ports, ...(b.ports as object | undefined) } })
        return [200, withCount(x)]
      }
      if (m === 'DELETE') {
        if (withCount(x).accounts > 0) throw new Problem(409, 'MH_BACKEND_IN_USE', `backend ${x.id} still holds accounts`)
        this.backends.delete(x.id)
        return [204, undefined]
      }
    }
    if (kind === 'pools') return this.pools(actor, m, id ?? '', parts.slice(3), q, b)
    if (kind === 'placement' && m === 'GET') {
      const eligible = [...this.backends.values()].filter((x) => x.adminState === 'active').map((x) => x.id)
      const excluded = [...this.backends.values()].filter((x) => x.adminState !== 'active').map((x) => ({ id: x.id, reason: x.adminState }))
      const candidates = [...this.backends.values()].map((x) => ({ id: x.id, accounts: 0, capacity: x.capacity, weight: x.weight, adminState: x.adminState }))
      if (eligible.length === 0) return [200, { ok: false, reason: 'no eligible backend', excluded, candidates }]
      return [200, { ok: true, backend: eligible[0], applied: q.policy ?? 'least-used', eligible, excluded, candidates }]
    }
    if (kind === 'moves') {
      if (id === undefined && m === 'GET') {
        const list = this.moves
          .filter((x) => (!q.state || x.state === q.state) && (!q.account || x.account === q.account) && (q.active !== 'true' || !['completed', 'aborted'].includes(x.state)))
          .filter((x) => q.after === undefined || x.id > Number(q.after))
        return [200, page(list, 'moves', (x) => x.id, q.limit)]
      }
      if (id === undefined && m === 'POST') return [201, { moves: this.startMoves(actor, b) }]
      const mv = this.moves.find((x) => String(x.id) === id)
      if (!mv) throw notFound('move')
      if (m === 'GET' && verb === undefined) return [200, mv]
      if (m === 'POST' && verb === 'complete') {
        if (mv.state !== 'copied' && !(q.force === 'true' && ['failed', 'pending'].includes(mv.state))) throw new Problem(409, 'MH_MOVE_STATE', `move ${mv.id} is ${mv.state}`)
        mv.state = 'completed'
        this.accounts.get(mv.account)!.moving = false
        this.accounts.get(mv.account)!.backend = mv.target
        return [200, mv]
      }
      if (m === 'POST' && verb === 'abort') {
        if (['completed', 'aborted'].includes(mv.state)) throw new Problem(409, 'MH_MOVE_STATE', `move ${mv.id} is ${mv.state}`)
        mv.state = 'aborted'
        this.accounts.get(mv.account)!.moving = false
        return [200, mv]
      }
    }
    if (kind === 'audit' && m === 'GET') {
      // Newest first; `before` is the id the previous page ended with.
      const list = [...this.audit]
        .reverse()
        .filter((e) => (!q.subjectType || e.subjectType === q.subjectType) && (!q.subject || e.subject === q.subject) && (!q.actor || e.actor === q.actor) && (!q.action || e.action === q.action))
        .filter((e) => q.before === undefined || e.id < Number(q.before))
      return [200, page(list, 'entries', (e) => e.id, q.limit)]
    }
    throw new Problem(404, 'MH_HTTP_NOT_FOUND', `no route ${m} ${url.pathname}`)
  }

  private idempotent(req: IncomingMessage, actor: string, raw: string, run: () => [number, unknown, Record<string, string>?]): [number, unknown, Record<string, string>?] {
    const key = req.headers['idempotency-key']
    if (typeof key !== 'string') return run()
    const seen = this.idempotency.get(`${actor}\0${key}`)
    if (seen) {
      if (seen.body !== raw) throw new Problem(422, 'MH_IDEMPOTENCY_MISMATCH', 'this Idempotency-Key was used with a different request')
      if ('refused' in seen) throw seen.refused
      return [seen.status, seen.answer, { 'idempotent-replayed': 'true' }]
    }
    try {
      const [status, answer, headers] = run()
      this.idempotency.set(`${actor}\0${key}`, { body: raw, status, answer })
      return [status, answer, headers]
    } catch (e) {
      if (e instanceof Problem && e.status < 500) this.idempotency.set(`${actor}\0${key}`, { body: raw, refused: e })
      throw e
    }
  }

  private createAccount(actor: string, b: Record<string, unknown>): [number, unknown, Record<string, string>] {
    if (typeof b.address !== 'string') throw invalid('body must have required property address')
    const address = b.address.toLowerCase()
    const domain = this.domains.get(address.split('@')[1] ?? '')
    if (!domain || domain.aliasFor) throw new Problem(422, 'MH_DOMAIN_NOT_SERVED', `mailhostd does not serve the domain of ${address}`)
    if (this.accounts.has(address)) throw new Problem(409, 'MH_ADDRESS_TAKEN', `${address} is already an address of an account`)
    const backend = (b.backend as string | undefined) ?? 'mx1'
    if (this.backends.get(backend)?.adminState !== 'active') throw new Problem(422, 'MH_NO_ELIGIBLE_BACKEND', `backend ${backend} cannot take accounts`)
    const a = this.putAccount(address, backend, {
      status: (b.status as string | undefined) ?? 'active',
      aliases: (b.aliases as string[] | undefined) ?? [],
      sendAs: (b.sendAs as string[] | undefined) ?? [],
      hasPassword: typeof b.password === 'string',
    })
    this.record(actor, 'create', 'account', address, null, { ...a, ...(b.password ? { password: '(changed)' } : {}) })
    return [201, a, { location: `/v1/accounts/${encodeURIComponent(address)}` }]
  }

  private startMoves(actor: string, b: Record<string, unknown>): Move[] {
    const target = b.target as string
    if (!this.backends.has(target)) throw notFound('backend')
    const addresses = b.fromBackend === undefined
      ? (b.accounts as string[])
      : [...this.accounts.values()].filter((a) => a.backend === b.fromBackend).map((a) => a.address).slice(0, (b.limit as number | undefined) ?? Infinity)
    const accounts = addresses.map((address) => {
      const a = this.accounts.get(address)
      if (!a) throw notFound(`account ${address}`)
      if (a.moving) throw new Problem(409, 'MH_ACCOUNT_MOVING', `${address} is already being moved`)
      return a
    })
    return accounts.map((a) => {
      a.moving = true
      const at = '2026-12-01T10:00:00.000Z'
      const mv: Move = { id: this.moves.length + 1, account: a.address, source: { backend: a.backend, mailHost: a.mailHost }, target, state: 'copied', detail: null, actor, createdAt: at, updatedAt: at, finishedAt: null }
      this.moves.push(mv)
      this.record(actor, 'start', 'move', String(mv.id), null, mv)
      return mv
    })
  }
}
