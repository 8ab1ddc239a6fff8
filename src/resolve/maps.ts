// The four lookup maps of architecture.md §4. One Resolution per key is cached; each map is a
// cheap, pure view of it, so transport_maps and relay_recipient_maps asking about the same
// address cost one directory query between them.

import { isIP } from 'node:net'
import { LOCAL_MAP_PREFIX, MAP_NAMES } from '../config/schema.js'
import { found, notFound, temp, type Answer } from './answer.js'
import type { BackendInfo, Registry } from './registry.js'
import type { Mailbox, Resolution } from './resolver.js'

export type MapName = (typeof MAP_NAMES)[number] | `local/${string}`

export interface RouteOptions {
  /** Template for a mailHost that names no known backend; `{mailHost}` is replaced. */
  readonly unknownMailHost: string
}

/** The map name if valid for this registry, else undefined (a configuration error in the caller). */
export function parseMapName(map: string, registry: Registry): MapName | undefined {
  if ((MAP_NAMES as readonly string[]).includes(map)) return map as MapName
  if (map.startsWith(LOCAL_MAP_PREFIX) && registry.backend(map.slice(LOCAL_MAP_PREFIX.length))) return map as MapName
  return undefined
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

export function mailboxRoute(m: Mailbox, registry: Registry, opts: RouteOptions): string {
  const backend = registry.backendForMailHost(m.mailHost)
  return backend ? backendRoute(backend) : opts.unknownMailHost.replaceAll('{mailHost}', m.mailHost)
}

export function answerFor(map: MapName, r: Resolution, registry: Registry, opts: RouteOptions): Answer {
  if (r.kind === 'none') return notFound('no such address')
  if (map === 'transport') return transport(r, registry, opts)
  if (map === 'recipient') {
    const hosts = [...new Set(r.mailboxes.map((m) => m.mailHost))]
    return found((hosts.length > 0 ? hosts : r.external).join(','))
  }
  if (map === 'alias') return r.rewrite.length > 0 ? found(r.rewrite.join(',')) : notFound('already canonical')
  // local/<backend-id>: only addresses of a mailbox on that very backend. Aliases, alias
  // domains and catch-alls are rewritten on the front-end before mail reaches a backend. The
  // value is the backend's mailbox delivery route (its LMTP), so on the backend one map serves
  // both as local_recipient_maps (non-empty: local) and as transport_maps.
  const id = map.slice(LOCAL_MAP_PREFIX.length)
  const m = r.via === 'account' ? r.mailboxes[0] : undefined
  const backend = m && registry.backendForMailHost(m.mailHost)
  if (backend?.id === id) return found(mailboxDeliveryRoute(backend))
  return notFound(`not a mailbox on ${id}`)
}

function transport(r: Extract<Resolution, { kind: 'found' }>, registry: Registry, opts: RouteOptions): Answer {
  // A mailbox being moved has no trustworthy route until the move completes: TEMP keeps its
  // mail queued on the front-end (Postfix retries), where any route could deliver it to the
  // backend that is about to stop holding it.
  const moving = r.mailboxes.find((m) => registry.isMoving(m.address))
  if (moving) return temp(`${moving.address} is being moved to another backend`)
  // An alias reaching one backend only can be routed there; otherwise "no override" is the
  // right answer: virtual_alias_maps (the alias map) rewrites the recipient before delivery,
  // and trivial-rewrite routes each rewritten address on its own.
  const routes = new Set(r.mailboxes.map((m) => mailboxRoute(m, registry, opts)))
  if (routes.size === 1 && r.external.length === 0) return found([...routes][0]!)
  return notFound(r.mailboxes.length === 0 ? 'external alias' : 'alias spans several backends')
}
