// The cluster registry in memory: served domains and backends, loaded from the store. Lookups
// consult it on every request, so it is a plain snapshot swapped atomically on reload, and it
// keeps serving the last good snapshot if the store becomes unreachable.

import type { PinReader } from '../pools/pin-ledger.js'
import type { AdminState, ProbedService, RouteStyle, ServiceHealth } from './vocabulary.js'

export type { AdminState, ProbedService, RouteStyle, ServiceHealth } from './vocabulary.js'

export interface BackendPorts {
  readonly lmtp: number
  readonly smtp: number
  readonly imap: number
  readonly pop3: number
}

/** What placement and admin states know of any backend, host or pool. */
interface BackendCommon {
  readonly id: string
  /** mailHost values that mean this backend, besides its id. */
  readonly mailHosts: readonly string[]
  readonly route: RouteStyle
  /** Absent means active. */
  readonly adminState?: AdminState
  /** Placement weight (absent: 1). */
  readonly weight?: number
  /** Most accounts placement puts on it (absent or null: unlimited). */
  readonly capacity?: number | null
}

/** One server: an address to connect to and to probe. */
export interface HostInfo extends BackendCommon {
  /** Absent means host (rows and tests from before pools). */
  readonly kind?: 'host'
  /** IP address (v4 or v6). */
  readonly address: string
  readonly ports: BackendPorts
}

/** A member of a pool: a server like a host, named in the backend id namespace. */
export interface PoolMember {
  readonly kind: 'member'
  readonly id: string
  /** The pool's id. */
  readonly pool: string
  readonly address: string
  /** The pool's route. */
  readonly route: RouteStyle
  /** Its own where it set them, else the pool's. */
  readonly ports: BackendPorts
  /** Share of new pins; 0 takes none. */
  readonly weight: number
  /** Absent means active; drain takes no new pins, maintenance counts as down. */
  readonly adminState?: AdminState
}

/** Servers on shared storage, each user pinned to one member (docs/pools.md). */
export interface PoolInfo extends BackendCommon {
  readonly kind: 'pool'
  /** The members' default ports. */
  readonly ports: BackendPorts
  readonly members: readonly PoolMember[]
  /** How long a pin lives after the user's last lookup. */
  readonly pinForMs: number
  /**
   * Dovecot 2.3 director mode: login answers name `tag` (the director picks the member) and mail
   * goes to the director at `address`, with the pool's ports.
   */
  readonly director?: { readonly tag: string; readonly address: string }
}

/** What an account is placed on: one host or a pool. */
export type BackendInfo = HostInfo | PoolInfo

/** What connections go to and the health checks probe: hosts and pool members. */
export type ServerInfo = HostInfo | PoolMember

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
  readonly #members: ReadonlyMap<string, PoolMember>
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
    /** This instance's pins of pooled users (the daemon's ledger; none in unit tests of hosts). */
    readonly pins?: PinReader,
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
    this.#members = new Map(backends.flatMap((b) => (b.kind === 'pool' ? b.members.map((m) => [m.id, m] as const) : [])))
  }

  domain(name: string): DomainInfo | undefined {
    return this.#domains.get(name)
  }

  backend(id: string): BackendInfo | undefined {
    return this.#backends.get(id)
  }

  /** A pool member by its id. */
  member(id: string): PoolMember | undefined {
    return this.#members.get(id)
  }

  /** Whether `id` names a backend or a pool member: the ids local/<id> maps take. */
  hasServerOrBackend(id: string): boolean {
    return this.#backends.has(id) || this.#members.has(id)
  }

  /** Every server with an address, hosts then members, in backend order: what the checks probe. */
  get servers(): ServerInfo[] {
    return this.backends.flatMap((b): ServerInfo[] => (b.kind === 'pool' ? [...b.members] : [b]))
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
    return new Registry(this.domains, this.backends, moving, this.#health, this.pins)
  }

  /** The same registry with other health states. */
  withHealth(health: ReadonlyMap<string, ReadonlyMap<ProbedService, ServiceHealth>>): Registry {
    return new Registry(this.domains, this.backends, this.#moving, health, this.pins)
  }

  /**
   * Whether a server's service is usable: not in maintenance (treated as down without probing)
   * and not recorded down. Without `service`, every probed service must be up (placement, and
   * pool members, whose users all go to one member for every service). A pool is usable while
   * one of its members is.
   */
  isUp(target: ServerInfo | PoolInfo, service?: ProbedService): boolean {
    if (target.adminState === 'maintenance') return false
    if (target.kind === 'pool') return target.members.some((m) => this.isUp(m, service))
    const states = this.#health.get(target.id)
    if (!states) return true
    return service === undefined ? ![...states.values()].includes('down') : states.get(service) !== 'down'
  }

  /** Members a new pin may go to: up on every probed service, active, and of weight above 0. */
  eligibleMembers(pool: PoolInfo): PoolMember[] {
    return pool.members.filter((m) => (m.adminState ?? 'active') === 'active' && m.weight > 0 && this.isUp(m))
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
