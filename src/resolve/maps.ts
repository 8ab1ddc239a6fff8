// The four lookup maps of architecture.md §4. One Resolution per key is cached; each map is a
// cheap, pure view of it, so transport_maps and relay_recipient_maps asking about the same
// address cost one directory query between them. Where a mailbox lives is not decided here:
// transport and local/<id> ask decide() (destination.ts) like every other protocol.

import { LOCAL_MAP_PREFIX, MAP_NAMES } from '../config/schema.js'
import { found, notFound, perm, temp, type Answer } from './answer.js'
import { decide } from './destination.js'
import type { Registry } from './registry.js'
import type { Resolution } from './resolver.js'

export { backendRoute, mailboxDeliveryRoute } from './destination.js'

/** A map named once in MAP_NAMES. */
export type FixedMapName = (typeof MAP_NAMES)[number]
/** `local/<backend-id>`: the parameterised map. */
export type LocalMapName = `${typeof LOCAL_MAP_PREFIX}${string}`
export type MapName = FixedMapName | LocalMapName

export interface RouteOptions {
  /** Template for a mailHost that names no known backend; `{mailHost}` is replaced. */
  readonly unknownMailHost: string
}

/**
 * The map name if valid, else undefined (a configuration error in the caller): one of
 * MAP_NAMES, or local/<id> for an id `isBackend` knows. The config loader and every lookup
 * parse map names here.
 */
export function parseMapName(map: string, isBackend: (id: string) => boolean): MapName | undefined {
  if ((MAP_NAMES as readonly string[]).includes(map)) return map as FixedMapName
  if (isLocalMap(map) && isBackend(localBackend(map))) return map
  return undefined
}

function isLocalMap(map: string): map is LocalMapName {
  return map.startsWith(LOCAL_MAP_PREFIX)
}

const localBackend = (map: LocalMapName): string => map.slice(LOCAL_MAP_PREFIX.length)

/** Whether a map's answer names where mailboxes are reached (transport, local/<id>): those need pool pins. */
export function routesMailboxes(map: MapName): boolean {
  return map === 'transport' || isLocalMap(map)
}

export function answerFor(map: MapName, r: Resolution, registry: Registry, opts: RouteOptions): Answer {
  if (r.kind === 'none') return notFound('no such address')
  if (isLocalMap(map)) return local(localBackend(map), r, registry)
  // Exhaustive: a name added to MAP_NAMES without its case here does not compile.
  switch (map) {
    case 'transport':
      return transport(r, registry, opts)
    case 'recipient': {
      const hosts = [...new Set(r.mailboxes.map((m) => m.mailHost))]
      return found((hosts.length > 0 ? hosts : r.external).join(','))
    }
    case 'alias':
      return r.rewrite.length > 0 ? found(r.rewrite.join(',')) : notFound('already canonical')
    default:
      // Only reachable from untyped callers, as lookups answer a name parseMapName refuses.
      return perm(`unknown map ${String(map satisfies never)}`)
  }
}

/**
 * local/<backend-id>: only addresses of a mailbox on that very backend. Aliases, alias domains
 * and catch-alls are rewritten on the front-end before mail reaches a backend. The value is the
 * backend's mailbox delivery route (its LMTP), so on the backend one map serves both as
 * local_recipient_maps (non-empty: local) and as transport_maps.
 */
function local(id: string, r: Extract<Resolution, { kind: 'found' }>, registry: Registry): Answer {
  const m = r.via === 'account' ? r.mailboxes[0] : undefined
  const d = m && decide(m, { service: 'local', backend: id }, registry)
  if (d?.kind === 'destination') return found(d.route)
  // A pooled mailbox whose pin could not be had: the member's Postfix must keep the mail, not
  // reject it as unknown.
  if (d?.kind === 'unavailable') return temp(`${m!.address}: pool member unavailable (${d.reason})`)
  return notFound(`not a mailbox on ${id}`)
}

function transport(r: Extract<Resolution, { kind: 'found' }>, registry: Registry, opts: RouteOptions): Answer {
  // A mailbox being moved has no trustworthy route until the move completes: TEMP keeps its
  // mail queued on the front-end (Postfix retries), where any route could deliver it to the
  // backend that is about to stop holding it.
  const asker = { service: 'transport', unknownMailHost: opts.unknownMailHost } as const
  const routes = new Set<string>()
  for (const m of r.mailboxes) {
    const d = decide(m, asker, registry)
    // decide() fails transport for a move, and for a pooled mailbox without a member.
    if (d.kind !== 'destination') return temp(d.reason === 'moving' ? `${m.address} is being moved to another backend` : `${m.address}: pool member unavailable (${d.reason})`)
    routes.add(d.route)
  }
  // An alias reaching one backend only can be routed there; otherwise "no override" is the
  // right answer: virtual_alias_maps (the alias map) rewrites the recipient before delivery,
  // and trivial-rewrite routes each rewritten address on its own.
  if (routes.size === 1 && r.external.length === 0) return found([...routes][0]!)
  return notFound(r.mailboxes.length === 0 ? 'external alias' : 'alias spans several backends')
}
