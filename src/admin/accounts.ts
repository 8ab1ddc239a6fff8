// Accounts through the admin API. Addresses are canonicalised exactly like lookups, so what is
// created is what Postfix and Dovecot will find; every address must be free in the whole
// directory (accounts and aliases) before it is written; placement picks the backend unless one
// is given; passwords are hashed here and never leave this module in clear. After each write,
// every instance is told which addresses and entry changed, so their caches drop them at once.

import { randomInt } from 'node:crypto'
import { hashPassword, type Scheme } from '../auth/passwords.js'
import type { AccountChanges, AccountRecord, AccountQuery } from '../directory/accounts.js'
import type { AccountStatus } from '../directory/directory.js'
import { AdminError, ErrorCodes, describeError } from '../errors.js'
import { canonicalAddress } from '../resolve/address.js'
import type { BackendInfo, Registry } from '../resolve/registry.js'
import { recordAudit } from './audit.js'
import { applied, writable, type AdminDeps } from './context.js'
import { exclusionOf, place, type Candidate } from './placement.js'

export interface AccountView {
  address: string
  /** The backend the mailHost names, or null when it names none. */
  backend: string | null
  mailHost: string
  status: AccountStatus
  aliases: string[]
  sendAs: string[]
  hasPassword: boolean
  moving: boolean
}

export interface NewAccountRequest {
  address: string
  password?: string
  backend?: string
  status?: AccountStatus
  aliases?: string[]
  sendAs?: string[]
}

export interface AccountUpdateRequest {
  password?: string | null
  status?: AccountStatus
  aliases?: string[]
  sendAs?: string[]
}

export interface AccountListRequest {
  domain?: string
  backend?: string
  status?: AccountStatus
  after?: string
  limit: number
}

const DOT_ATOM = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/

/** What the audit log records for an account: never the hash, only whether one is set. */
const recorded = (r: AccountRecord) => ({
  address: r.address,
  mailHost: r.mailHost,
  status: r.status,
  aliases: r.aliases,
  sendAs: r.sendAs,
  hasPassword: r.hasPassword,
})

export class Accounts {
  /** The tail of the queue #oneAtATime keeps; never rejects. */
  #placing: Promise<unknown> = Promise.resolve()

  constructor(private readonly d: AdminDeps) {}

  /**
   * Runs creates' placement-and-write sections one at a time on this instance. Placement reads
   * the account counts, and a create adds to them only once its write is done: two creates
   * placed at once would both see the room only one of them can take (a backend one short of its
   * capacity got both, least-used put both on the same backend). Hashing and the address checks
   * stay outside, so only the placement and the directory write queue up.
   */
  #oneAtATime<T>(section: () => Promise<T>): Promise<T> {
    const run = this.#placing.then(section)
    this.#placing = run.catch(() => undefined)
    return run
  }

  view(r: AccountRecord, registry: Registry = this.d.registry()): AccountView {
    return {
      address: r.address,
      backend: registry.backendForMailHost(r.mailHost)?.id ?? null,
      mailHost: r.mailHost,
      status: r.status,
      aliases: [...r.aliases],
      sendAs: [...r.sendAs],
      hasPassword: r.hasPassword,
      moving: registry.isMoving(r.address),
    }
  }

  async get(rawAddress: string): Promise<AccountView> {
    const { writer } = writable(this.d)
    return this.view(await this.#existing(writer.get.bind(writer), this.#address(rawAddress, 'address')))
  }

  async list(q: AccountListRequest): Promise<{ accounts: AccountView[]; next?: string }> {
    const { writer } = writable(this.d)
    const registry = this.d.registry()
    const query: { -readonly [K in keyof AccountQuery]: AccountQuery[K] } = { limit: q.limit }
    if (q.domain !== undefined) query.domain = q.domain.trim().toLowerCase()
    if (q.status !== undefined) query.status = q.status
    if (q.after !== undefined) query.after = q.after
    if (q.backend !== undefined) {
      const b = registry.backend(q.backend)
      if (!b) throw new AdminError(ErrorCodes.NOT_FOUND, `no backend ${q.backend}`)
      query.mailHosts = [b.id, ...b.mailHosts].map((h) => h.toLowerCase())
    }
    const page = await writer.list(query)
    return { accounts: page.accounts.map((a) => this.view(a, registry)), ...(page.next === undefined ? {} : { next: page.next }) }
  }

  async create(actor: string, req: NewAccountRequest): Promise<AccountView> {
    const { writer, counts } = writable(this.d)
    const address = this.#address(req.address, 'address')
    const aliases = this.#aliases(req.aliases ?? [], address)
    const sendAs = this.#sendAs(req.sendAs ?? [])
    await this.#checkFree([address, ...aliases], undefined)
    const passwordHash = req.password === undefined ? undefined : await this.#hash(req.password)
    const record = await this.#oneAtATime(async () => {
      const registry = this.d.registry()
      const backend = req.backend === undefined ? await this.#place(address) : await this.#given(req.backend, registry)
      const written = await writer.create({
        address,
        mailHost: mailHostOf(backend),
        status: req.status ?? 'active',
        ...(passwordHash === undefined ? {} : { passwordHash }),
        aliases,
        sendAs,
      })
      counts.adjust(written.mailHost, +1)
      return written
    })
    await this.#recordAndPublish(actor, 'create', record.address, undefined, record, [address, ...aliases], [record.id], req.password !== undefined)
    return this.view(record)
  }

  async update(actor: string, rawAddress: string, req: AccountUpdateRequest): Promise<AccountView> {
    const { writer } = writable(this.d)
    const address = this.#address(rawAddress, 'address')
    const current = await this.#existing(writer.get.bind(writer), address)
    this.#notMoving(current)
    const changes: { -readonly [K in keyof AccountChanges]: AccountChanges[K] } = {}
    if (req.status !== undefined) changes.status = req.status
    if (req.sendAs !== undefined) changes.sendAs = this.#sendAs(req.sendAs)
    if (req.aliases !== undefined) {
      changes.aliases = this.#aliases(req.aliases, address)
      const added = changes.aliases.filter((a) => !current.aliases.includes(a))
      await this.#checkFree(added, current.id)
    }
    if (req.password !== undefined) changes.passwordHash = req.password === null ? null : await this.#hash(req.password)
    const { before, after } = await writer.update(address, changes)
    const addresses = [...new Set([before.address, ...before.aliases, ...after.aliases])]
    await this.#recordAndPublish(actor, 'update', address, before, after, addresses, [after.id], req.password !== undefined)
    return this.view(after)
  }

  async remove(actor: string, rawAddress: string): Promise<void> {
    const { writer, counts } = writable(this.d)
    const address = this.#address(rawAddress, 'address')
    const current = await this.#existing(writer.get.bind(writer), address)
    this.#notMoving(current)
    const before = await writer.delete(address)
    counts.adjust(before.mailHost, -1)
    await this.#recordAndPublish(actor, 'delete', address, before, undefined, [before.address, ...before.aliases], [before.id], false)
  }

  /**
   * Audit and notification after a directory write. The write itself cannot share a store
   * transaction (LDAP has none), so a failure here is logged loudly: the change stands, and the
   * caches still drop it at their TTL.
   */
  async #recordAndPublish(
    actor: string,
    action: 'create' | 'update' | 'delete',
    subject: string,
    before: AccountRecord | undefined,
    after: AccountRecord | undefined,
    addresses: readonly string[],
    ids: readonly string[],
    passwordChanged: boolean,
  ): Promise<void> {
    const change = { kind: 'entries' as const, addresses, ids }
    try {
      await this.d.store.transaction(async (tx) => {
        await recordAudit(tx, {
          actor,
          action,
          subjectType: 'account',
          subject,
          before: before && recorded(before),
          after: after && { ...recorded(after), ...(passwordChanged ? { password: '(changed)' } : {}) },
        })
        await this.d.bus.publish(change, tx)
      })
    } catch (e) {
      this.d.logger.error({ actor, action, account: subject, err: describeError(e) }, 'account written, but its audit entry or change notification failed')
      await this.d.bus.publish(change).catch(() => undefined)
    }
    await applied(this.d, change)
  }

  #address(raw: string, field: string): string {
    const c = canonicalAddress(raw, this.d.config.addresses)
    if (!c.ok) throw new AdminError(ErrorCodes.VALIDATION, `${field}: not an address (${c.reason}): ${raw}`)
    // Lookups accept any key, but a new address must be a dot-atom (RFC 5321): no quoted local
    // part, space, comma, parentheses or backslash, which mail tools need quoting for. It is not
    // shell-safe: ` $ | & ' { } ~ # ! and a leading - are atext, and an admin expects every
    // address the directory can hold to be provisionable. So addresses reach a hook only as an
    // environment variable, never through a shell (move-hook.ts); docs/admin.md says what hook
    // authors must quote. LDAP filters and DNs escape every value (ldap-dn.ts).
    if (!DOT_ATOM.test(c.local)) throw new AdminError(ErrorCodes.VALIDATION, `${field}: ${c.address}: the local part must be a dot-atom (letters, digits, !#$%&'*+/=?^_\`{|}~- and single dots)`)
    // A delimiter in an account's own name would make `user+ext@` ambiguous for every lookup.
    if (c.base !== undefined) {
      throw new AdminError(ErrorCodes.VALIDATION, `${field}: ${c.address} contains the extension delimiter (addresses.extensionDelimiters)`)
    }
    const domain = this.d.registry().domain(c.domain)
    if (!domain) throw new AdminError(ErrorCodes.DOMAIN_NOT_SERVED, `${field}: ${c.domain} is not a served domain`)
    if (domain.aliasFor !== undefined && field === 'address') {
      throw new AdminError(ErrorCodes.DOMAIN_NOT_SERVED, `${field}: ${c.domain} is an alias domain of ${domain.aliasFor}; create the account there`)
    }
    return c.address
  }

  #aliases(raw: readonly string[], primary: string): string[] {
    const out = new Set(raw.map((a) => this.#address(a, 'aliases')))
    out.delete(primary)
    return [...out].sort()
  }

  #sendAs(raw: readonly string[]): string[] {
    const out = new Set<string>()
    for (const s of raw) {
      const t = s.trim()
      if (t.startsWith('@')) {
        const c = canonicalAddress(`x${t}`, this.d.config.addresses)
        if (!c.ok) throw new AdminError(ErrorCodes.VALIDATION, `sendAs: not a domain: ${s}`)
        out.add(`@${c.domain}`)
      } else {
        const c = canonicalAddress(t, this.d.config.addresses)
        if (!c.ok) throw new AdminError(ErrorCodes.VALIDATION, `sendAs: not an address: ${s}`)
        out.add(c.address)
      }
    }
    return [...out].sort()
  }

  /** Every address must be unowned in the whole directory (aliases included), or owned by `self`. */
  async #checkFree(addresses: readonly string[], self: string | undefined): Promise<void> {
    for (const a of addresses) {
      const owners = (await this.d.directory.findByAddress(a)).filter((e) => e.id !== self)
      if (owners.length > 0) throw new AdminError(ErrorCodes.ADDRESS_TAKEN, `${a} is already an address of ${owners.map((e) => e.id).join(', ')}`)
    }
  }

  async #existing(get: (a: string) => Promise<AccountRecord | undefined>, address: string): Promise<AccountRecord> {
    const r = await get(address)
    if (!r) throw new AdminError(ErrorCodes.NOT_FOUND, `no account ${address}`)
    return r
  }

  #notMoving(r: AccountRecord): void {
    if (this.d.registry().isMoving(r.address)) {
      throw new AdminError(ErrorCodes.ACCOUNT_MOVING, `${r.address} is being moved; complete or abort the move first`)
    }
  }

  async #hash(password: string): Promise<string> {
    if (password === '') throw new AdminError(ErrorCodes.VALIDATION, 'password: empty (use null to remove the password)')
    try {
      return await hashPassword(password, scheme(this.d))
    } catch (e) {
      throw new AdminError(ErrorCodes.PASSWORD_SCHEME, `password: ${describeError(e)}`)
    }
  }

  async #place(address: string): Promise<BackendInfo> {
    const registry = this.d.registry()
    const domain = registry.domain(address.slice(address.lastIndexOf('@') + 1))
    const result = await placement(this.d, domain?.affinity)
    if (!result.ok) throw new AdminError(ErrorCodes.NO_ELIGIBLE_BACKEND, result.reason)
    return registry.backend(result.backend)!
  }

  async #given(id: string, registry: Registry): Promise<BackendInfo> {
    const b = registry.backend(id)
    if (!b) throw new AdminError(ErrorCodes.NO_ELIGIBLE_BACKEND, `no backend ${id}`)
    const candidates = await candidatesOf(this.d)
    const why = exclusionOf(candidates.find((c) => c.id === id)!)
    if (why !== undefined) throw new AdminError(ErrorCodes.NO_ELIGIBLE_BACKEND, `backend ${id} takes no new accounts: ${why}`)
    return b
  }
}

/** The mailHost value an account on this backend gets: its first mailHost name, else its id. */
export function mailHostOf(b: BackendInfo): string {
  return b.mailHosts[0] ?? b.id
}

function scheme(d: AdminDeps): Scheme {
  const s = d.config.admin.passwordScheme
  return s === 'auto' ? (d.config.directory.type === 'ldap' ? 'SSHA512' : 'ARGON2ID') : s
}

/** Every registered backend as placement sees it, with live account counts. */
export async function candidatesOf(d: AdminDeps): Promise<Candidate[]> {
  const registry = d.registry()
  const counts = d.counts ? await d.counts.byBackend(registry) : new Map<string, number>()
  return registry.backends.map((b) => ({
    id: b.id,
    weight: b.weight ?? 1,
    capacity: b.capacity ?? null,
    accounts: counts.get(b.id) ?? 0,
    adminState: b.adminState ?? 'active',
    // Maintenance counts as its own reason (adminState); health is the probes' verdict.
    healthy: registry.isUp({ ...b, adminState: 'active' }),
  }))
}

export async function placement(d: AdminDeps, affinity: string | undefined, policy = d.config.admin.placement.policy) {
  const candidates = await candidatesOf(d)
  const random = d.random ?? (() => randomInt(2 ** 47) / 2 ** 47)
  return { ...place({ policy, candidates, ...(affinity === undefined ? {} : { affinity }), random }), candidates }
}
