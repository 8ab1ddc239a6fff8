// An in-memory Directory (our own interface) for unit tests: programmable entries, failures
// and delays, and a log of the addresses queried.

import type { AccountEntry, AliasEntry, Directory, DirectoryEntry } from '../../src/directory/directory.js'
import { DirectoryError, ErrorCodes } from '../../src/errors.js'
import { Registry, type BackendInfo } from '../../src/resolve/registry.js'

export class MemoryDirectory implements Directory {
  readonly kind: string = 'memory'
  readonly queries: string[] = []
  readonly #entries = new Map<string, DirectoryEntry[]>()
  /** Plain passwords by entry id (the real directories check hashes or bind). */
  readonly passwords = new Map<string, string>()
  /** When set, every call fails with it. */
  failure: Error | undefined
  /** Delay before answering, ms. */
  delayMs = 0

  add(address: string, entry: DirectoryEntry): this {
    this.#entries.set(address, [...(this.#entries.get(address) ?? []), entry])
    return this
  }

  account(id: string, addresses: string[], mailHost: string, status: AccountEntry['status'] = 'active', sendAs: string[] = []): this {
    const entry: AccountEntry = { kind: 'account', id, canonical: addresses[0], mailHost, status, sendAs }
    for (const a of addresses) this.add(a, entry)
    return this
  }

  alias(address: string, targets: string[]): this {
    const entry: AliasEntry = { kind: 'alias', id: `alias:${address}`, targets }
    return this.add(address, entry)
  }

  /** Every address an account owns (aliases left out), as the warm-up's listing gives them. */
  mailboxAddresses(): string[] {
    return [...this.#entries].filter(([, entries]) => entries.some((e) => e.kind === 'account')).map(([address]) => address)
  }

  /** Removes the entry with this id from every address it owned (a delete, or before re-adding it changed). */
  removeEntry(id: string): this {
    for (const [address, entries] of this.#entries) {
      const kept = entries.filter((e) => e.id !== id)
      if (kept.length > 0) this.#entries.set(address, kept)
      else this.#entries.delete(address)
    }
    return this
  }

  withPasswords(byId: Record<string, string>): this {
    for (const [id, pw] of Object.entries(byId)) this.passwords.set(id, pw)
    return this
  }

  down(): void {
    this.failure = new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, 'connect ECONNREFUSED 127.0.0.1:389')
  }

  up(): void {
    this.failure = undefined
  }

  async findByAddress(address: string): Promise<DirectoryEntry[]> {
    this.queries.push(address)
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs))
    if (this.failure) throw this.failure
    return this.#entries.get(address) ?? []
  }

  async verifyPassword(account: AccountEntry, password: string): Promise<'ok' | 'mismatch'> {
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs))
    if (this.failure) throw this.failure
    const stored = this.passwords.get(account.id)
    return stored !== undefined && stored === password ? 'ok' : 'mismatch'
  }

  async ping(): Promise<void> {
    if (this.failure) throw this.failure
  }

  async close(): Promise<void> {}
}

const ports = { lmtp: 24, smtp: 25, imap: 143, pop3: 110 }
export const DEMO_BACKENDS: BackendInfo[] = [
  { id: 'mx1', mailHosts: ['mx1.example.org'], address: '10.0.0.11', route: 'lmtp', ports },
  { id: 'mx2', mailHosts: ['mx2.example.org'], address: '10.0.0.12', route: 'lmtp', ports },
]

export function demoRegistry(): Registry {
  return new Registry(
    [
      { name: 'example.org' },
      { name: 'example.net', aliasFor: 'example.org' },
      { name: 'example.com', catchAll: ['bob@example.org'] },
    ],
    DEMO_BACKENDS,
  )
}

/** The demo directory of architecture.md §7. */
export function demoDirectory(): MemoryDirectory {
  return new MemoryDirectory()
    .account('alice', ['alice@example.org', 'alice.liddell@example.org'], 'mx1.example.org')
    .account('bob', ['bob@example.org'], 'mx2.example.org')
    .account('carol', ['carol@example.org'], 'mx1.example.org', 'disabled')
    .alias('postmaster@example.org', ['alice@example.org'])
    .withPasswords({ alice: 'wonderland', bob: 'builder', carol: 'carol-disabled' })
}
