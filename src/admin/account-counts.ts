// Live account counts per backend, for least-used placement and the backends listing. Counting
// means a full scan of the directory (an LDAP search over every mailbox), so one count is kept
// for a short while and adjusted by this instance's own creates, deletes and moves in between;
// other instances' writes show at the next refresh.

import type { AccountWriter } from '../directory/accounts.js'
import type { Registry } from '../resolve/registry.js'

export const COUNTS_MAX_AGE_MS = 30_000

export class AccountCounts {
  #byMailHost: Map<string, number> | undefined
  #takenAt = 0
  #refreshing: Promise<Map<string, number>> | undefined

  constructor(
    private readonly writer: AccountWriter,
    private readonly maxAgeMs = COUNTS_MAX_AGE_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Accounts per backend id; mailHost values naming no backend are left out. */
  async byBackend(registry: Registry): Promise<Map<string, number>> {
    const byHost = await this.#current()
    const out = new Map<string, number>(registry.backends.map((b) => [b.id, 0]))
    for (const [host, n] of byHost) {
      const b = registry.backendForMailHost(host)
      if (b) out.set(b.id, (out.get(b.id) ?? 0) + n)
    }
    return out
  }

  /** This instance wrote an account onto (+1) or off (-1) a mailHost. */
  adjust(mailHost: string, delta: number): void {
    if (!this.#byMailHost) return
    const k = mailHost.toLowerCase()
    this.#byMailHost.set(k, Math.max(0, (this.#byMailHost.get(k) ?? 0) + delta))
  }

  /** Forget the count (a backend's names changed); the next read counts again. */
  reset(): void {
    this.#byMailHost = undefined
  }

  #current(): Promise<Map<string, number>> {
    if (this.#byMailHost && this.now() - this.#takenAt < this.maxAgeMs) return Promise.resolve(this.#byMailHost)
    this.#refreshing ??= this.writer
      .countByMailHost()
      .then((m) => {
        this.#byMailHost = m
        this.#takenAt = this.now()
        return m
      })
      .finally(() => (this.#refreshing = undefined))
    return this.#refreshing
  }
}
