// The cluster registry in memory: served domains and backends, loaded from the store. Lookups
// consult it on every request, so it is a plain snapshot swapped atomically on reload, and it
// keeps serving the last good snapshot if the store becomes unreachable.

export type RouteStyle = 'lmtp' | 'smtp'

/** active: normal; drain: no new accounts placed; maintenance: treated as down for logins. */
export type AdminState = 'active' | 'drain' | 'maintenance'

export interface BackendPorts {
  readonly lmtp: number
  readonly smtp: number
  readonly imap: number
  readonly pop3: number
}

export interface BackendInfo {
  readonly id: string
  /** mailHost values that mean this backend, besides its id. */
  readonly mailHosts: readonly string[]
  /** IP address (v4 or v6). */
  readonly address: string
  readonly route: RouteStyle
  readonly ports: BackendPorts
  /** Absent means active. */
  readonly adminState?: AdminState
}

export interface DomainInfo {
  /** Canonical ASCII, lowercase. */
  readonly name: string
  /** Set for an alias domain: the local domain it stands for. */
  readonly aliasFor?: string
  /** Targets for unknown local parts; never shadows an existing address. */
  readonly catchAll?: readonly string[]
}

export class Registry {
  readonly #domains: ReadonlyMap<string, DomainInfo>
  readonly #backends: ReadonlyMap<string, BackendInfo>
  readonly #byMailHost: ReadonlyMap<string, BackendInfo>

  constructor(domains: readonly DomainInfo[], backends: readonly BackendInfo[]) {
    this.#domains = new Map(domains.map((d) => [d.name, d]))
    this.#backends = new Map(backends.map((b) => [b.id, b]))
    const byHost = new Map<string, BackendInfo>()
    for (const b of backends) {
      for (const h of [b.id, ...b.mailHosts]) byHost.set(h.toLowerCase(), b)
    }
    this.#byMailHost = byHost
  }

  domain(name: string): DomainInfo | undefined {
    return this.#domains.get(name)
  }

  backend(id: string): BackendInfo | undefined {
    return this.#backends.get(id)
  }

  /** The backend a mailHost value names (case-insensitive), if any. */
  backendForMailHost(mailHost: string): BackendInfo | undefined {
    return this.#byMailHost.get(mailHost.trim().toLowerCase())
  }

  get domains(): DomainInfo[] {
    return [...this.#domains.values()]
  }

  get backends(): BackendInfo[] {
    return [...this.#backends.values()]
  }
}
