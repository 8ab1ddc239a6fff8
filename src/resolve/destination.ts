// Where a mailbox lives and whether the service asking may reach it now: the one routing
// decision. The maps (transport, local/<id>), the login router (Dovecot passdb over HTTP and the
// dict socket, nginx logins) and nginx's smtp routing all ask here, so a mailbox gets the same
// answer from every protocol in every backend state. The input carries the mailbox's canonical
// address as well as its mailHost: the choice of a pool's member per user (its pin, docs/pools.md)
// is made here and nowhere else.

import { isIP } from 'node:net'
import type { HostInfo, PoolInfo, ProbedService, Registry, ServerInfo } from './registry.js'
import type { Mailbox } from './resolver.js'

/** A login service the router tells apart; any other Dovecot service (submission, sieve, doveadm, dict) is `login`. */
export type LoginService = 'imap' | 'pop3' | 'lmtp' | 'smtp' | 'login'

/** Who asks. Closed: a new asker needs its rule in decide(), which the compiler insists on. */
export type Asker =
  /** Postfix transport_maps on a front-end; `unknownMailHost` is config routing.unknownMailHost. */
  | { readonly service: 'transport'; readonly unknownMailHost: string }
  /** Postfix on backend `backend` asking local/<backend>: is this mailbox delivered here? */
  | { readonly service: 'local'; readonly backend: string }
  /** A proxied login (Dovecot proxy, nginx with a password) for this service. */
  | { readonly service: LoginService }
  /** nginx smtp_auth none: the backend whose SMTP takes the session, chosen at the first RCPT. */
  | { readonly service: 'nginx-smtp' }

/** Why a mailbox cannot be reached now: every one is temporary (mail waits, logins retry). */
export type Unavailable =
  | 'moving' // an admin move is under way: the source may stop holding the mailbox any moment
  | 'maintenance' // the backend's admin state
  | 'down' // the health checks recorded the service the asker needs as down
  | 'unknown-mailhost' // the mailHost names no configured backend
  | 'not-ip' // nginx needs an IP literal as Auth-Server
  | 'unpinned' // a pooled mailbox whose pin could not be had from the store (settlePins failed)

/** Where to go: the asker may reach the mailbox now. */
export interface Destination {
  readonly kind: 'destination'
  /**
   * The server: a host, or the pool member the mailbox is pinned to. Undefined only for
   * transport to a mailHost that names no backend (routing.unknownMailHost).
   */
  readonly backend: ServerInfo | undefined
  /** Where to connect: the server's address (the bare mailHost when there is no backend). */
  readonly address: string
  /** The server's port for the service; undefined lets the proxy use its default. */
  readonly port: number | undefined
  /**
   * A pool in Dovecot 2.3 director mode, for a login: the director_tag a Dovecot answer carries
   * instead of a host and port (the director picks the member). address and port are the
   * director's, for nginx, which proxies to the director.
   */
  readonly directorTag?: string
  /** The Postfix route: the map's value for transport and local/<id>, informative for the others. */
  readonly route: string
}

export interface Unavailability {
  readonly kind: 'unavailable'
  readonly reason: Unavailable
}

export type Decision =
  | Destination
  | Unavailability
  /** local/<id> only: the mailbox is not delivered on that backend (a miss, not a failure). */
  | { readonly kind: 'elsewhere' }

type LocalAsker = Extract<Asker, { service: 'local' }>
type NginxSmtpAsker = Extract<Asker, { service: 'nginx-smtp' }>

/** What the decision reads of a resolved mailbox: its canonical address and its mailHost. */
export type RoutedMailbox = Pick<Mailbox, 'address' | 'mailHost'>

/** The login service for a service name as Dovecot or nginx sends it. */
export function loginService(service: string): LoginService {
  return service === 'imap' || service === 'pop3' || service === 'lmtp' || service === 'smtp' ? service : 'login'
}

/**
 * The rules per asker, as the protocols have always answered (docs/login.md, protocols.md):
 * - transport: a moving mailbox waits; otherwise the backend's route whatever its admin state
 *   or health (Postfix queues and retries what a backend does not take), and a mailHost
 *   naming no backend goes by the routing.unknownMailHost template.
 * - local/<id>: found only when the mailHost names backend <id>; moves, admin state and health
 *   do not matter (the backend delivers what it holds). For pools, see decidePooled().
 * - logins, in this order: a mailHost naming no backend, maintenance, the health of the probed
 *   service the login depends on (imap, pop3; delivery for lmtp and smtp; none for others),
 *   then a move. Each fails temporarily; the port is the backend's for imap, pop3, lmtp, smtp.
 * - nginx smtp: a move, a mailHost naming no backend, an address that is no IP literal, then
 *   maintenance or delivery down; the port is the backend's SMTP.
 */
export function decide(mailbox: RoutedMailbox, asker: LocalAsker, registry: Registry): Decision
export function decide(mailbox: RoutedMailbox, asker: NginxSmtpAsker, registry: Registry): (Destination & { readonly port: number }) | Unavailability
export function decide(mailbox: RoutedMailbox, asker: Exclude<Asker, LocalAsker>, registry: Registry): Exclude<Decision, { kind: 'elsewhere' }>
export function decide(mailbox: RoutedMailbox, asker: Asker, registry: Registry): Decision {
  const backend = registry.backendForMailHost(mailbox.mailHost)
  if (backend?.kind === 'pool') return decidePooled(mailbox, asker, backend, registry)
  if (asker.service === 'local' && backend?.id !== asker.backend) return { kind: 'elsewhere' }
  return decideFor(backend, mailbox, asker, registry)
}

/**
 * The rules for one server (a host, or the member a pooled mailbox is pinned to), as
 * decide() documents them.
 */
function decideFor(backend: ServerInfo | undefined, mailbox: RoutedMailbox, asker: Asker, registry: Registry): Decision {
  const moving = registry.isMoving(mailbox.address)
  switch (asker.service) {
    case 'transport':
      if (moving) return unavailable('moving')
      if (!backend) return { kind: 'destination', backend, address: mailbox.mailHost, port: undefined, route: asker.unknownMailHost.replaceAll('{mailHost}', mailbox.mailHost) }
      return destination(backend, backend.route === 'lmtp' ? backend.ports.lmtp : backend.ports.smtp, backendRoute(backend))
    case 'local':
      if (backend === undefined) return { kind: 'elsewhere' }
      return destination(backend, backend.ports.lmtp, mailboxDeliveryRoute(backend))
    case 'nginx-smtp':
      if (moving) return unavailable('moving')
      if (!backend) return unavailable('unknown-mailhost')
      if (isIP(backend.address) === 0) return unavailable('not-ip')
      if (!registry.isUp(backend, 'delivery')) return unavailable(backend.adminState === 'maintenance' ? 'maintenance' : 'down')
      return destination(backend, backend.ports.smtp, backendRoute(backend))
    case 'imap':
    case 'pop3':
    case 'lmtp':
    case 'smtp':
    case 'login': {
      if (!backend) return unavailable('unknown-mailhost')
      if (backend.adminState === 'maintenance') return unavailable('maintenance')
      const probed = PROBED[asker.service]
      if (probed && !registry.isUp(backend, probed)) return unavailable('down')
      if (moving) return unavailable('moving')
      return destination(backend, asker.service === 'login' ? undefined : backend.ports[asker.service], backendRoute(backend))
    }
    default:
      // Only reachable from untyped callers: a bug, not a state of the cluster.
      throw new Error(`no routing rule for ${JSON.stringify(asker satisfies never)}`)
  }
}

/**
 * A mailbox on a pool goes wherever its pin says, for every asker, so one user is served by one
 * member (docs/pools.md). local/<id> on any member of the pool (or local/<pool>) finds every
 * mailbox of the pool, with the pinned member's LMTP as the route: storage is shared, so the
 * member that received the mail hands it to the one the user is on. In director mode, logins
 * name the director_tag and the director picks the member; mail goes through the director.
 */
function decidePooled(mailbox: RoutedMailbox, asker: Asker, pool: PoolInfo, registry: Registry): Decision {
  if (asker.service === 'local' && asker.backend !== pool.id && registry.member(asker.backend)?.pool !== pool.id) return { kind: 'elsewhere' }
  if (pool.director) {
    const director: HostInfo = { id: pool.id, mailHosts: [], address: pool.director.address, route: pool.route, ports: pool.ports }
    if (!isLogin(asker)) return decideFor(director, mailbox, asker, registry)
    if (pool.adminState === 'maintenance') return unavailable('maintenance')
    const d = decideFor(director, mailbox, asker, registry)
    return d.kind === 'destination' ? { ...d, directorTag: pool.director.tag } : d
  }
  if (isLogin(asker) && pool.adminState === 'maintenance') return unavailable('maintenance')
  const member = registry.pins?.pinned(mailbox.address, pool, registry)
  if (member === undefined) return unavailable(registry.eligibleMembers(pool).length === 0 && !registry.isUp(pool) ? 'down' : 'unpinned')
  return decideFor(member, mailbox, asker, registry)
}

function isLogin(asker: Asker): asker is Extract<Asker, { service: LoginService }> {
  return asker.service !== 'transport' && asker.service !== 'local' && asker.service !== 'nginx-smtp'
}

/**
 * Before decide(): gives every pooled mailbox among `mailboxes` a live pin on this instance,
 * claiming it in the store when there is none here (the only round trip pooled routing costs).
 * Resolves when every claim is settled, whatever its outcome, within `timeoutMs`: what is left of
 * the caller's one request deadline, so a request whose earlier steps ran slow still answers in
 * time. With nothing left (0 or less) no claim is started. decide() then answers `unpinned` or
 * `down` for a mailbox left without one: a temporary failure, never a miss or a guessed member.
 */
export async function settlePins(mailboxes: readonly RoutedMailbox[], registry: Registry, timeoutMs: number): Promise<void> {
  const pins = registry.pins
  if (pins === undefined || timeoutMs <= 0) return
  const claims: Promise<unknown>[] = []
  for (const m of mailboxes) {
    const pool = poolOf(m, registry)
    if (pool && !pins.holds(m.address, pool, registry)) claims.push(pins.claim(m.address, pool, registry, timeoutMs))
  }
  if (claims.length > 0) await Promise.all(claims)
}

/** Whether settlePins() has work for these mailboxes (it has none for hosts and pinned users). */
export function needsPins(mailboxes: readonly RoutedMailbox[], registry: Registry): boolean {
  const pins = registry.pins
  if (pins === undefined) return false
  for (const m of mailboxes) {
    const pool = poolOf(m, registry)
    if (pool && !pins.holds(m.address, pool, registry)) return true
  }
  return false
}

/** The pool a mailbox is on, when its pins are mailhostd's to keep (not in director mode). */
function poolOf(m: RoutedMailbox, registry: Registry): PoolInfo | undefined {
  const b = registry.backendForMailHost(m.mailHost)
  return b?.kind === 'pool' && b.director === undefined ? b : undefined
}

/** The health-checked service a login depends on (docs/configuration.md, health). */
const PROBED: Readonly<Record<LoginService, ProbedService | undefined>> = { imap: 'imap', pop3: 'pop3', lmtp: 'delivery', smtp: 'delivery', login: undefined }

const unavailable = (reason: Unavailable): Unavailability => ({ kind: 'unavailable', reason })

function destination<P extends number | undefined>(backend: ServerInfo, port: P, route: string): Destination & { readonly port: P } {
  return { kind: 'destination', backend, address: backend.address, port, route }
}

/** Postfix next-hop syntax: brackets suppress MX lookups; IPv6 needs the `ipv6:` tag. */
function nexthop(b: ServerInfo): string {
  return isIP(b.address) === 6 ? `[ipv6:${b.address}]` : `[${b.address}]`
}

/** How front-ends deliver to a backend: its LMTP, or its own Postfix over SMTP. */
export function backendRoute(b: ServerInfo): string {
  return b.route === 'lmtp' ? mailboxDeliveryRoute(b) : `smtp:${nexthop(b)}:${b.ports.smtp}`
}

/**
 * How the backend itself delivers into its mailboxes: always its LMTP (Dovecot). For a backend
 * whose front-end route is SMTP, the SMTP route would send its own mail back to itself.
 */
export function mailboxDeliveryRoute(b: ServerInfo): string {
  return `lmtp:inet:${nexthop(b)}:${b.ports.lmtp}`
}
