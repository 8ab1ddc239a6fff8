// The cluster registry in memory: served domains and backends, loaded from the store. Lookups
// consult it on every request, so it is a plain snapshot swapped atomically on reload, and it
// keeps serving the last good snapshot if the store becomes unreachable.

export type RouteStyle = 'lmtp' | 'smtp'

/** Services the health checker probes (config `health.services`); `delivery` is the route's port. */
export type ProbedService = 'delivery' | 'imap' | 'pop3'

/** A backend service's state as the health checker last recorded it. Absent: never probed (up). */
export type ServiceHealth = 'up' | 'down'

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
  /** Placement weight (absent: 1). */
  readonly weight?: number
  /** Most accounts placement puts on it (absent or null: unlimited). */
  readonly capacity?: number | null
}

export interface DomainInfo {
  /** Canonical ASCII, lowercase. */
  readonly name: string
  /** Set for an alias domain: the local domain it stands for. */
  readonly aliasFor?: string
  /** Targets for unknown local parts; never shadows an existing address. */
  readonly catchAll?: readonly string[]
  /** Backend id the `domain` placement policy prefers. */
  readonly affinity?: string
}

export class Registry {
  readonly #domains: ReadonlyMap<string, DomainInfo>
  readonly #backends: ReadonlyMap<string, BackendInfo>
  readonly #byMailHost: ReadonlyMap<string, BackendInfo>
  readonly #moving: ReadonlySet<string>
  readonly #health: ReadonlyMap<string, ReadonlyMap<ProbedService, ServiceHealth>>

  /**
   * `moving`: canonical primary addresses of accounts being moved (admin moves). `health`: by
   * backend id, the recorded state of each probed service (health checks).
   */
  constructor(
    domains: readonly DomainInfo[],
    backends: readonly BackendInfo[],
    moving: Iterable<string> = [],
    health: ReadonlyMap<string, ReadonlyMap<ProbedService, ServiceHealth>> = new Map(),
  ) {
    this.#moving = new Set(moving)
    this.#health = health
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

  /**
   * The backend a mailHost value names (case-insensitive), if any. Where a mailbox is reached
   * is decide()'s answer (destination.ts), which also knows the account; this is the name alone,
   * for admin views and moves.
   */
  backendForMailHost(mailHost: string): BackendInfo | undefined {
    return this.#byMailHost.get(mailHost.trim().toLowerCase())
  }

  /** Whether the mailbox with this canonical address is being moved: mail waits, logins fail temporarily. */
  isMoving(address: string): boolean {
    return this.#moving.has(address)
  }

  get movingCount(): number {
    return this.#moving.size
  }

  /** The same domains and backends with another set of moving accounts. */
  withMoving(moving: Iterable<string>): Registry {
    return new Registry(this.domains, this.backends, moving, this.#health)
  }

  /** The same registry with other health states. */
  withHealth(health: ReadonlyMap<string, ReadonlyMap<ProbedService, ServiceHealth>>): Registry {
    return new Registry(this.domains, this.backends, this.#moving, health)
  }

  /**
   * Whether a backend service is usable: not in maintenance (treated as down without probing)
   * and not recorded down. Without `service`, every probed service must be up (placement).
   */
  isUp(backend: BackendInfo, service?: ProbedService): boolean {
    if (backend.adminState === 'maintenance') return false
    const states = this.#health.get(backend.id)
    if (!states) return true
    return service === undefined ? ![...states.values()].includes('down') : states.get(service) !== 'down'
  }

  /** Recorded health states of a backend's probed services (empty when never probed). */
  healthOf(id: string): ReadonlyMap<ProbedService, ServiceHealth> {
    return this.#health.get(id) ?? new Map()
  }

  get domains(): DomainInfo[] {
    return [...this.#domains.values()]
  }

  get backends(): BackendInfo[] {
    return [...this.#backends.values()]
  }
}
