// Accounts through the admin API. Addresses are canonicalised exactly like lookups, so what is
// created is what Postfix and Dovecot will find; every address must be free in the whole
// directory (accounts and aliases) before it is written; placement picks the backend unless one
// is given; passwords are hashed here and never leave this module in clear. After each write,
// every instance is told which addresses and entry changed, so their caches drop them at once.

import { randomInt } from 'node:crypto'
import { inlinePasswords, type Scheme } from '../auth/passwords.js'
import { createHash } from 'node:crypto'
import type { AccountChanges, AccountRecord, AccountQuery, NewAccount } from '../directory/accounts.js'
import { AdminError, ErrorCodes, describeError, isMailhostdError } from '../errors.js'
import { canonicalAddress } from '../resolve/address.js'
import type { BackendInfo, Registry } from '../resolve/registry.js'
import type { Queryable } from '../store/store.js'
import { recordAudit } from './audit.js'
import { applied, intentsOf, writable, type AdminDeps } from './context.js'
import { freeClaim, type PendingAnswer } from './idempotency.js'
import type { Intent, Intents } from './intents.js'
import { exclusionOf, place, type Candidate } from './placement.js'
import type { AccountListRequest, AccountUpdateRequest, AccountView, NewAccountRequest } from './shapes.js'

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

/** What an intent records to tell, after a crash, whether the write landed (never a secret). */
interface CreateIntent {
  address: string
  mailHost: string
  /** SHA-256 of the password hash written, or null for none. */
  password: string | null
}
interface UpdateIntent {
  before: ReturnType<typeof recorded> & { id: string }
  changes: Omit<AccountChanges, 'passwordHash'>
  /** Present when the password changes: SHA-256 of the new hash, or null when it is removed. */
  password?: string | null
}
interface DeleteIntent {
  before: ReturnType<typeof recorded> & { id: string }
}

interface AccountWrite {
  readonly actor: string
  readonly action: 'create' | 'update' | 'delete'
  /** The primary address. */
  readonly subject: string
  readonly answer?: PendingAnswer | undefined
  readonly intent: CreateIntent | UpdateIntent | DeleteIntent
  readonly passwordChanged: boolean
  /** The directory write; `tx` is the store transaction when the directory is the store. */
  readonly write: (tx: Queryable | undefined) => Promise<{ before?: AccountRecord; after?: AccountRecord }>
}

interface Written {
  readonly before?: AccountRecord | undefined
  readonly after?: AccountRecord | undefined
  readonly view: AccountView | undefined
}

const KIND = { create: 'account-create', update: 'account-update', delete: 'account-delete' } as const
const ACTION = { 'account-create': 'create', 'account-update': 'update', 'account-delete': 'delete' } as const

/** The addresses and entry whose cached answers a write makes wrong. */
function changeOf(r: { before?: AccountRecord | undefined; after?: AccountRecord | undefined }) {
  const addresses = [...new Set([r.before?.address, r.after?.address, ...(r.before?.aliases ?? []), ...(r.after?.aliases ?? [])].filter((a) => a !== undefined))]
  const ids = [...new Set([r.before?.id, r.after?.id].filter((i) => i !== undefined))]
  return { kind: 'entries' as const, addresses, ids }
}

const digestOf = (hash: string | undefined): string | null => (hash === undefined || hash === '' ? null : createHash('sha256').update(hash).digest('hex'))
const sameHost = (a: string, b: string) => a.toLowerCase() === b.toLowerCase()
const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((v, i) => v === b[i])

/** Whether an account shows every visible change of an update. */
function matches(r: AccountRecord, c: Omit<AccountChanges, 'passwordHash'>): boolean {
  return (
    (c.mailHost === undefined || sameHost(r.mailHost, c.mailHost)) &&
    (c.status === undefined || r.status === c.status) &&
    (c.aliases === undefined || sameList(r.aliases, c.aliases)) &&
    (c.sendAs === undefined || sameList(r.sendAs, c.sendAs))
  )
}

export class Accounts {
  /** The tail of the queue #oneAtATime keeps; never rejects. */
  #placing: Promise<unknown> = Promise.resolve()
  readonly #intents: Intents
  readonly #busy = new Set<number>()

  constructor(private readonly d: AdminDeps) {
    this.#intents = intentsOf(d)
  }

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

  async create(actor: string, req: NewAccountRequest, answer?: PendingAnswer): Promise<AccountView> {
    const { writer, counts } = writable(this.d)
    const address = this.#address(req.address, 'address')
    const aliases = this.#aliases(req.aliases ?? [], address)
    const sendAs = this.#sendAs(req.sendAs ?? [])
    await this.#checkFree([address, ...aliases], undefined)
    // Hashed before any transaction opens: a slow hash must never hold a store session.
    const passwordHash = req.password === undefined ? undefined : await this.#hash(req.password)
    return this.#oneAtATime(async () => {
      const registry = this.d.registry()
      const backend = req.backend === undefined ? await this.#place(address) : await this.#given(req.backend, registry)
      const account: NewAccount = {
        address,
        mailHost: mailHostOf(backend),
        status: req.status ?? 'active',
        ...(passwordHash === undefined ? {} : { passwordHash }),
        aliases,
        sendAs,
      }
      const { after, view } = await this.#write({
        actor,
        action: 'create',
        subject: address,
        answer,
        intent: { address, mailHost: account.mailHost, password: digestOf(passwordHash) } satisfies CreateIntent,
        passwordChanged: req.password !== undefined,
        write: async (tx) => ({ after: await writer.create(account, tx) }),
      })
      counts.adjust(after!.mailHost, +1)
      return view!
    })
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
    const { passwordHash, ...visible } = changes
    const { view } = await this.#write({
      actor,
      action: 'update',
      subject: address,
      intent: {
        before: { id: current.id, ...recorded(current) },
        changes: visible,
        ...(passwordHash === undefined ? {} : { password: digestOf(passwordHash ?? undefined) }),
      } satisfies UpdateIntent,
      passwordChanged: req.password !== undefined,
      write: (tx) => writer.update(address, changes, tx),
    })
    return view!
  }

  async remove(actor: string, rawAddress: string): Promise<void> {
    const { writer, counts } = writable(this.d)
    const address = this.#address(rawAddress, 'address')
    const current = await this.#existing(writer.get.bind(writer), address)
    this.#notMoving(current)
    const { before } = await this.#write({
      actor,
      action: 'delete',
      subject: address,
      intent: { before: { id: current.id, ...recorded(current) } } satisfies DeleteIntent,
      passwordChanged: false,
      write: async (tx) => ({ before: await writer.delete(address, tx) }),
    })
    counts.adjust(before!.mailHost, -1)
  }

  /**
   * One account write, applied whole: the directory, its audit entry, the change notification
   * (caches everywhere drop the addresses at the commit) and, for a create with an
   * Idempotency-Key, the key's answer. Where the directory is the store (SQL) that is one
   * transaction. Where it is not (LDAP), an intent is committed first, then the directory is
   * written, then the rest commits with the intent marked done; a crash in between leaves an
   * open intent that resolve() settles from what the directory says.
   */
  async #write(w: AccountWrite): Promise<Written> {
    const { writer } = writable(this.d)
    if (writer.inStore) {
      const done = await this.d.store.transaction(async (tx) => {
        const r = await w.write(tx)
        return { ...r, view: await this.#record(tx, w, r, w.answer) }
      })
      await applied(this.d, changeOf(done))
      return done
    }
    const intent = await this.#intents.open(KIND[w.action], w.subject, w.actor, w.intent, w.answer?.claim)
    this.#busy.add(intent.id)
    try {
      let r: { before?: AccountRecord; after?: AccountRecord }
      try {
        r = await w.write(undefined)
      } catch (e) {
        // A refusal (AdminError) means the directory changed nothing. Any other failure leaves
        // the write's fate unknown (a timeout after the server applied it): the intent stays
        // open, and recovery reads the outcome back once the write can no longer land.
        if (e instanceof AdminError) await this.d.store.transaction((tx) => this.#intents.settle(tx, intent.id, 'undone'))
        else this.d.logger.warn({ intent: intent.id, account: w.subject, err: describeError(e) }, 'account write failed with its outcome unknown; it is read back from the directory in a few seconds')
        throw e
      }
      const done = await this.d.store.transaction(async (tx) => {
        // Resolved meanwhile as orphaned (this instance looked dead to another): 'done' was
        // audited there; 'undone' was read before this write landed, so it is audited here,
        // without the key's answer, which the resolution freed for a retry.
        if (await this.#intents.settle(tx, intent.id, 'done')) return { ...r, view: await this.#record(tx, w, r, w.answer) }
        if (await this.#intents.settle(tx, intent.id, 'done', 'undone')) return { ...r, view: await this.#record(tx, w, r, undefined) }
        return { ...r, view: r.after && this.view(r.after) }
      })
      await applied(this.d, changeOf(done))
      return done
    } finally {
      this.#busy.delete(intent.id)
    }
  }

  /** Audit entry, change notification and the key's answer of a write, in its transaction. */
  async #record(tx: Queryable, w: Pick<AccountWrite, 'actor' | 'action' | 'subject' | 'passwordChanged'>, r: Omit<Written, 'view'>, answer: PendingAnswer | undefined): Promise<AccountView | undefined> {
    await recordAudit(tx, {
      actor: w.actor,
      action: w.action,
      subjectType: 'account',
      subject: w.subject,
      before: r.before && recorded(r.before),
      after: r.after && { ...recorded(r.after), ...(w.passwordChanged ? { password: '(changed)' } : {}) },
    })
    await this.d.bus.publish(changeOf(r), tx)
    const view = r.after && this.view(r.after)
    if (answer) await answer.seal(tx, view)
    return view
  }

  /** Open intents this instance is working on right now: recovery leaves them alone. */
  get busy(): ReadonlySet<number> {
    return this.#busy
  }

  /**
   * Settles an account intent nobody is finishing (its request died, or recording its outcome
   * failed): reads the account back to learn whether the write landed, then records it with its
   * audit entry and the key's answer, or marks it undone and frees the key. Exactly once: the
   * intent row is locked and must still be open.
   */
  async resolve(intent: Intent): Promise<void> {
    const { writer } = writable(this.d)
    const action = ACTION[intent.kind as keyof typeof ACTION]
    const current = await writer.get(intent.subject)
    let outcome: Omit<Written, 'view'> | undefined
    if (action === 'create') {
      const p = intent.payload as CreateIntent
      const landed = current !== undefined && sameHost(current.mailHost, p.mailHost) && (await this.#passwordIs(intent.subject, p.password))
      outcome = landed ? { after: current } : undefined
    } else if (action === 'update') {
      const p = intent.payload as UpdateIntent
      const landed = current !== undefined && matches(current, p.changes) && (p.password === undefined || (await this.#passwordIs(intent.subject, p.password)))
      outcome = landed ? { before: p.before, after: current } : undefined
    } else {
      const p = intent.payload as DeleteIntent
      outcome = current === undefined ? { before: p.before } : undefined
    }
    const passwordChanged = action === 'create' ? (intent.payload as CreateIntent).password !== null : action === 'update' && (intent.payload as UpdateIntent).password !== undefined
    const settled = await this.d.store.transaction(async (tx) => {
      if (!(await this.#intents.lock(tx, intent.id))) return false
      if (outcome === undefined) {
        await this.#intents.settle(tx, intent.id, 'undone')
        if (intent.claim) await freeClaim(tx, intent.claim)
        return false
      }
      await this.#intents.settle(tx, intent.id, 'done')
      const view = await this.#record(tx, { actor: intent.actor, action, subject: intent.subject, passwordChanged }, outcome, undefined)
      // The key's answer, if its claim is still the one the dead request held.
      if (intent.claim) await tx.query('update idempotency_keys set status = 201, body = $4::jsonb where actor = $1 and key = $2 and token = $3 and status is null', [intent.claim.actor, intent.claim.key, intent.claim.token, JSON.stringify(view ?? null)])
      return true
    })
    this.d.logger.warn({ intent: intent.id, account: intent.subject, action, outcome: outcome === undefined ? 'not written' : 'written' }, 'account write of a stopped request resolved')
    if (settled && outcome !== undefined) {
      this.d.counts?.reset()
      await applied(this.d, changeOf(outcome))
    }
  }

  /** Whether the stored password is the one with this digest (null: no password). */
  async #passwordIs(address: string, digest: string | null): Promise<boolean> {
    const { writer } = writable(this.d)
    return digestOf(await writer.passwordHash(address)) === digest
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
      return await (this.d.passwords ?? inlinePasswords).hash(password, scheme(this.d))
    } catch (e) {
      // No worker free (or it died): a temporary failure (503) to retry, not a refused password.
      if (isMailhostdError(e) && e.transient) throw e
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
  return s === 'auto' ? d.terms.passwordScheme : s
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
