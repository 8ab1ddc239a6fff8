// The resolver turns one canonical address into a Resolution (architecture.md §3.3): exact
// address, then without its extension, then the alias domain's target, then the catch-all.
// Aliases are followed to their final mailboxes. It throws on directory failure and on data
// it must not guess about (duplicate owners, alias loops); it never turns either into a miss.

import type { Logger } from 'pino'
import type { AccountEntry, AccountStatus, Directory, DirectoryEntry } from '../directory/directory.js'
import { DirectoryDataError, ErrorCodes } from '../errors.js'
import { LogThrottle } from '../log.js'
import { canonicalAddress, withExtension, type AddressOptions, type CanonicalAddress } from './address.js'
import { isMailHost } from './mail-host.js'
import type { Registry } from './registry.js'

/** A mailbox the key finally reaches. */
export interface Mailbox {
  readonly id: string
  /** Canonical address of the mailbox. */
  readonly address: string
  readonly mailHost: string
  readonly status: AccountStatus
  /** Extra senders the mailbox may use (raw directory values: addresses or `@domain`). */
  readonly sendAs: readonly string[]
}

export type Via = 'account' | 'alias' | 'alias-domain' | 'catch-all'

export type Resolution =
  | { readonly kind: 'none' }
  | {
      readonly kind: 'found'
      readonly via: Via
      /** Mailboxes in the cluster the key delivers to (empty for a purely external alias). */
      readonly mailboxes: readonly Mailbox[]
      /** Addresses outside the served domains that the key expands to. */
      readonly external: readonly string[]
      /** What virtual_alias_maps should rewrite the key to; empty when the key is already canonical. */
      readonly rewrite: readonly string[]
    }


/**
 * Told every directory question one resolution asks and every entry it gets back, so the cache
 * knows which changes make the answer wrong (an alias reaching a moved account, a cached miss
 * for an address that now exists).
 */
export interface ResolutionTrace {
  /** A canonical address was looked up (exact, without extension, alias or catch-all target). */
  asked(address: string): void
  /** The directory returned this entry (LDAP DN, `sql:account:N`, ...). */
  returned(entryId: string): void
}

/** What one call carries down the recursion. */
interface Call {
  readonly signal: AbortSignal | undefined
  readonly trace: ResolutionTrace | undefined
}

/** Alias chains deeper than this are treated as a loop (a configuration error). */
export const MAX_ALIAS_DEPTH = 8

// Cached answers are held by the million (docs/benchmarks.md, Scale): what many of them have
// in common is shared rather than copied into each. Frozen, so no holder can change another's.
const NONE: readonly never[] = Object.freeze([])
const list = <T>(values: readonly T[]): readonly T[] => (values.length === 0 ? NONE : values)

/**
 * mailHost values are few (one per backend) but every directory reply carries its own copy.
 * Bounded, so odd data cannot grow the table without limit; past it values are kept as given.
 */
const MAIL_HOSTS = new Map<string, string>()
const MAX_SHARED_MAIL_HOSTS = 1024
function sharedMailHost(host: string): string {
  const have = MAIL_HOSTS.get(host)
  if (have !== undefined) return have
  if (MAIL_HOSTS.size < MAX_SHARED_MAIL_HOSTS) MAIL_HOSTS.set(host, host)
  return host
}

export class Resolver {
  readonly #duplicates = new LogThrottle(60_000)

  constructor(
    private readonly directory: Directory,
    private readonly registry: () => Registry,
    private readonly addressOptions: AddressOptions,
    private readonly logger: Logger,
  ) {}

  /**
   * `addr` must be in a served domain (the caller checks that without a directory query).
   * `trace` hears every directory question and answer of this call (cache dependencies).
   */
  async resolve(addr: CanonicalAddress, signal?: AbortSignal, trace?: ResolutionTrace): Promise<Resolution> {
    return this.#resolve(addr, [], { signal, trace })
  }

  /**
   * What resolve() answers when the directory, asked for exactly `addr`, returns `owner` and
   * nothing else: for an account that is the whole resolution, without a query. The cache
   * warm-up uses it for the answers of a listing it read in bulk. Throws as resolve() would for
   * unusable data.
   */
  resolveOwned(addr: CanonicalAddress, owner: AccountEntry, trace?: ResolutionTrace): Resolution {
    if (!this.registry().domain(addr.domain)) return { kind: 'none' }
    trace?.asked(addr.address)
    trace?.returned(owner.id)
    return this.#account(owner, addr.address, addr, undefined)
  }

  async #resolve(addr: CanonicalAddress, chain: readonly string[], call: Call): Promise<Resolution> {
    if (chain.includes(addr.address) || chain.length > MAX_ALIAS_DEPTH) {
      throw new DirectoryDataError(ErrorCodes.ALIAS_LOOP, `alias loop or chain too deep: ${[...chain, addr.address].join(' -> ')}`)
    }
    const path = [...chain, addr.address]
    const domain = this.registry().domain(addr.domain)
    if (!domain) return { kind: 'none' }

    const exact = await this.#owners(addr.address, call)
    if (exact) return this.#fromEntry(exact, addr.address, addr, undefined, path, call)
    if (addr.base !== undefined) {
      const base = await this.#owners(addr.base, call)
      if (base) return this.#fromEntry(base, addr.base, addr, addr, path, call)
    }
    if (domain.aliasFor !== undefined) {
      const target = this.#canonical(`${addr.local}@${domain.aliasFor}`)
      if (!target) return { kind: 'none' }
      const inner = await this.#resolve(target, path, call)
      if (inner.kind === 'none') return inner
      return { ...inner, via: 'alias-domain', rewrite: inner.rewrite.length > 0 ? inner.rewrite : [target.address] }
    }
    if (domain.catchAll !== undefined) {
      // The catch-all's own targets do not inherit the unknown local part's extension.
      return this.#expand(domain.catchAll, undefined, 'catch-all', path, call)
    }
    return { kind: 'none' }
  }

  /** The single owner of `address`, undefined when none; several owners are a data error. */
  async #owners(address: string, call: Call): Promise<DirectoryEntry | undefined> {
    call.trace?.asked(address)
    const entries = await this.directory.findByAddress(address, call.signal)
    for (const e of entries) call.trace?.returned(e.id)
    const unique = [...new Map(entries.map((e) => [e.id, e])).values()]
    if (unique.length > 1) {
      const ids = unique.map((e) => e.id).join(' | ')
      // Loud, but once a minute per address (with how many were not logged): every lookup of it
      // and of its user+ext@ and alias-domain forms finds the same duplicate.
      this.#duplicates.run(address, (suppressed) =>
        this.logger.error({ address, owners: ids, suppressed }, 'DUPLICATE OWNERS: one address owned by several directory entries; answering temporary failure until fixed'),
      )
      throw new DirectoryDataError(ErrorCodes.DUPLICATE_OWNER, `${address} has ${unique.length} owners`)
    }
    return unique[0]
  }

  async #fromEntry(
    entry: DirectoryEntry,
    matched: string,
    key: CanonicalAddress,
    viaExtension: CanonicalAddress | undefined,
    path: readonly string[],
    call: Call,
  ): Promise<Resolution> {
    if (entry.kind === 'alias') {
      const ext = viaExtension && { delimiter: viaExtension.delimiter, extension: viaExtension.extension }
      return this.#expand(entry.targets, ext, 'alias', path, call)
    }
    return this.#account(entry, matched, key, viaExtension)
  }

  #account(entry: AccountEntry, matched: string, key: CanonicalAddress, viaExtension: CanonicalAddress | undefined): Resolution {
    const mailbox = this.#mailbox(entry, matched)
    const canonical = withExtension(mailbox.address, viaExtension?.delimiter, viaExtension?.extension)
    return {
      kind: 'found',
      via: 'account',
      mailboxes: [mailbox],
      external: NONE,
      rewrite: canonical === key.address ? NONE : [canonical],
    }
  }

  #mailbox(entry: AccountEntry, matched: string): Mailbox {
    if (!isMailHost(entry.mailHost)) {
      throw new DirectoryDataError(ErrorCodes.DIRECTORY_DATA, `entry ${entry.id} has an unusable mailHost`)
    }
    const canonical = entry.canonical === undefined ? undefined : this.#canonical(entry.canonical)
    return {
      id: entry.id,
      // The matched string (the cache key itself, usually) rather than an equal copy.
      address: canonical === undefined || canonical.address === matched ? matched : canonical.address,
      mailHost: sharedMailHost(entry.mailHost),
      status: entry.status,
      sendAs: list(entry.sendAs),
    }
  }

  async #expand(
    targets: readonly string[],
    ext: { delimiter: string | undefined; extension: string | undefined } | undefined,
    via: Via,
    path: readonly string[],
    call: Call,
  ): Promise<Resolution> {
    const mailboxes = new Map<string, Mailbox>()
    const external = new Set<string>()
    const rewrite = new Set<string>()
    for (const raw of targets) {
      const target = this.#canonical(raw)
      if (!target) {
        this.logger.warn({ alias: path.at(-1), target: raw }, 'alias target is not an address; ignored')
        continue
      }
      if (!this.registry().domain(target.domain)) {
        const outside = withExtension(raw.trim(), ext?.delimiter, ext?.extension)
        external.add(outside)
        rewrite.add(outside)
        continue
      }
      const inner = await this.#resolve(target, path, call)
      if (inner.kind === 'none') {
        this.logger.warn({ alias: path.at(-1), target: target.address }, 'alias target does not exist; ignored')
        continue
      }
      for (const m of inner.mailboxes) mailboxes.set(m.id, m)
      for (const x of inner.external) external.add(x)
      // Rewrite straight to the final addresses; the caller's extension follows them.
      const finals = inner.rewrite.length > 0 ? inner.rewrite : [target.address]
      for (const f of finals) rewrite.add(withExtension(f, ext?.delimiter, ext?.extension))
    }
    if (mailboxes.size === 0 && external.size === 0) return { kind: 'none' }
    return { kind: 'found', via, mailboxes: [...mailboxes.values()], external: list([...external]), rewrite: list([...rewrite]) }
  }

  #canonical(raw: string): CanonicalAddress | undefined {
    const c = canonicalAddress(raw, this.addressOptions)
    return c.ok ? c : undefined
  }
}
