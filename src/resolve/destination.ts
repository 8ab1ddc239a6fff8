// Where a mailbox lives and whether the service asking may reach it now: the one routing
// decision. The maps (transport, local/<id>), the login router (Dovecot passdb over HTTP and the
// dict socket, nginx logins) and nginx's smtp routing all ask here, so a mailbox gets the same
// answer from every protocol in every backend state. The input carries the mailbox's canonical
// address as well as its mailHost: a choice per user among several hosts belongs here and
// nowhere else.

import { isIP } from 'node:net'
import type { BackendInfo, ProbedService, Registry } from './registry.js'
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

/** Where to go: the asker may reach the mailbox now. */
export interface Destination {
  readonly kind: 'destination'
  /** Undefined only for transport to a mailHost that names no backend (routing.unknownMailHost). */
  readonly backend: BackendInfo | undefined
  /** Where to connect: the backend's address (the bare mailHost when there is no backend). */
  readonly address: string
  /** The backend's port for the service; undefined lets the proxy use its default. */
  readonly port: number | undefined
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
 *   do not matter (the backend delivers what it holds).
 * - logins, in this order: a mailHost naming no backend, maintenance, the health of the probed
 *   service the login depends on (imap, pop3; delivery for lmtp and smtp; none for others),
 *   then a move. Each fails temporarily; the port is the backend's for imap, pop3, lmtp, smtp.
 * - nginx smtp: a move, a mailHost naming no backend, an address that is no IP literal, then
 *   maintenance or delivery down; the port is the backend's SMTP.
 */
export function decide(mailbox: RoutedMailbox, asker: LocalAsker, registry: Registry): Exclude<Decision, { kind: 'unavailable' }>
export function decide(mailbox: RoutedMailbox, asker: NginxSmtpAsker, registry: Registry): (Destination & { readonly port: number }) | Unavailability
export function decide(mailbox: RoutedMailbox, asker: Exclude<Asker, LocalAsker>, registry: Registry): Exclude<Decision, { kind: 'elsewhere' }>
export function decide(mailbox: RoutedMailbox, asker: Asker, registry: Registry): Decision {
  const backend = registry.backendForMailHost(mailbox.mailHost)
  const moving = registry.isMoving(mailbox.address)
  switch (asker.service) {
    case 'transport':
      if (moving) return unavailable('moving')
      if (!backend) return { kind: 'destination', backend, address: mailbox.mailHost, port: undefined, route: asker.unknownMailHost.replaceAll('{mailHost}', mailbox.mailHost) }
      return destination(backend, backend.route === 'lmtp' ? backend.ports.lmtp : backend.ports.smtp, backendRoute(backend))
    case 'local':
      if (backend?.id !== asker.backend) return { kind: 'elsewhere' }
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

/** The health-checked service a login depends on (docs/configuration.md, health). */
const PROBED: Readonly<Record<LoginService, ProbedService | undefined>> = { imap: 'imap', pop3: 'pop3', lmtp: 'delivery', smtp: 'delivery', login: undefined }

const unavailable = (reason: Unavailable): Unavailability => ({ kind: 'unavailable', reason })

function destination<P extends number | undefined>(backend: BackendInfo, port: P, route: string): Destination & { readonly port: P } {
  return { kind: 'destination', backend, address: backend.address, port, route }
}

/** Postfix next-hop syntax: brackets suppress MX lookups; IPv6 needs the `ipv6:` tag. */
function nexthop(b: BackendInfo): string {
  return isIP(b.address) === 6 ? `[ipv6:${b.address}]` : `[${b.address}]`
}

/** How front-ends deliver to a backend: its LMTP, or its own Postfix over SMTP. */
export function backendRoute(b: BackendInfo): string {
  return b.route === 'lmtp' ? mailboxDeliveryRoute(b) : `smtp:${nexthop(b)}:${b.ports.smtp}`
}

/**
 * How the backend itself delivers into its mailboxes: always its LMTP (Dovecot). For a backend
 * whose front-end route is SMTP, the SMTP route would send its own mail back to itself.
 */
export function mailboxDeliveryRoute(b: BackendInfo): string {
  return `lmtp:inet:${nexthop(b)}:${b.ports.lmtp}`
}
