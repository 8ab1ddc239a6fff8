// The business logic every listener calls: map name and key in, one outcome out, within the
// deadline. Order matters for the failure model: first the answers that need no directory
// (bad map name, non-address keys, unserved domains), then the cache, then the directory.

import type { Logger } from 'pino'
import type { LookupCache } from '../cache/lookup-cache.js'
import { codeOf, describeError, isMailhostdError } from '../errors.js'
import { LogThrottle } from '../log.js'
import { UNKNOWN_LABEL, type Metrics } from '../metrics.js'
import { canonicalAddress, type AddressOptions, type CanonicalAddress } from './address.js'
import { notFound, perm, temp, type Answer, type Layer, type LookupResult, type LookupService } from './answer.js'
import { needsPins, settlePins } from './destination.js'
import { answerFor, parseMapName, routesMailboxes, type MapName, type RouteOptions } from './maps.js'
import type { Registry } from './registry.js'
import type { Resolution } from './resolver.js'

/** What a key resolves to, for callers that need mailboxes rather than a map's answer. */
export type KeyResolution =
  /** Not an address, or a domain not served: decided by rules, no directory query. */
  | { readonly kind: 'rules'; readonly reason: string }
  | { readonly kind: 'resolved'; readonly address: CanonicalAddress; readonly resolution: Resolution; readonly layer: Layer }
  /** No answer could be had within the deadline (answer a temporary failure). */
  | { readonly kind: 'failed'; readonly reason: string }

export interface LookupServiceOptions {
  readonly registry: () => Registry
  readonly cache: LookupCache
  readonly addresses: AddressOptions
  readonly routes: RouteOptions
  readonly deadlineMs: number
  readonly logger: Logger
  readonly metrics?: Metrics
}

export class Lookups implements LookupService {
  readonly #o: LookupServiceOptions
  readonly #throttle = new LogThrottle(10_000)
  /** Data errors stay until a human fixes them: once a minute per address is loud enough. */
  readonly #dataErrors = new LogThrottle(60_000)

  constructor(options: LookupServiceOptions) {
    this.#o = options
  }

  async lookup(map: string, key: string | null, protocol: string): Promise<LookupResult> {
    const started = performance.now()
    const now = this.#answerNow(map, key)
    return this.#record(protocol, map, key, isPending(now) ? await this.#answerLater(now, started) : now, started)
  }

  lookupCached(map: string, key: string | null, protocol: string): LookupResult | undefined {
    const started = performance.now()
    const now = this.#answerNow(map, key)
    return isPending(now) ? undefined : this.#record(protocol, map, key, now, started)
  }

  #record(protocol: string, map: string, key: string | null, { answer, layer, mapName }: Decided, started: number): LookupResult {
    const elapsedMs = performance.now() - started
    // The map as a label only when it is one: peers can send any number of made-up names.
    this.#o.metrics?.recordLookup(protocol, mapName ?? UNKNOWN_LABEL, answer.outcome, layer, elapsedMs / 1000)
    if (this.#o.logger.isLevelEnabled('debug')) {
      const detail = answer.outcome === 'found' ? answer.value : answer.reason
      this.#o.logger.debug({ protocol, map, key, outcome: answer.outcome, detail, layer, ms: round(elapsedMs) }, 'lookup')
    }
    return { answer, layer, elapsedMs }
  }

  /**
   * Rules first (no directory query for non-addresses and unserved domains), then the cache,
   * then the directory; within the deadline. `context` names the caller in failure logs.
   */
  async resolve(key: string | null, context: string): Promise<KeyResolution> {
    const now = this.#resolveNow(key)
    return now.ok ? this.#resolveLater(now, context) : now.resolution
  }

  /**
   * What resolve() can decide without waiting: the address rules and a fresh cache entry. Else
   * the canonical address, for #resolveLater. Nothing is started or counted for that case.
   */
  #resolveNow(key: string | null): { readonly ok: false; readonly resolution: KeyResolution } | CanonicalAddress {
    if (key === null) return decided({ kind: 'rules', reason: 'key is not valid UTF-8' })
    const addr = canonicalAddress(key, this.#o.addresses)
    if (!addr.ok) return decided({ kind: 'rules', reason: addr.reason })
    if (!this.#o.registry().domain(addr.domain)) return decided({ kind: 'rules', reason: 'domain not served' })
    const got = this.#o.cache.getFresh(addr.address)
    if (got === undefined) return addr
    return decided({ kind: 'resolved', address: addr, resolution: got.resolution, layer: got.layer })
  }

  /** The rest of resolve(): the cache's slow path (directory, deadline, stale answers). */
  async #resolveLater(addr: CanonicalAddress, context: string): Promise<KeyResolution> {
    const got = await this.#o.cache.get(addr.address, this.#o.deadlineMs)
    if (!got.ok) return { kind: 'failed', reason: this.#failure(context, addr.address, got.error) }
    return { kind: 'resolved', address: addr, resolution: got.resolution, layer: got.layer }
  }

  /** The answer when it needs no waiting, else what #answerLater needs to finish it. */
  #answerNow(map: string, key: string | null): Decided | Pending {
    const registry = this.#o.registry()
    const mapName = parseMapName(map, (id) => registry.hasServerOrBackend(id))
    if (!mapName) return { answer: perm(`unknown map ${printable(map)}`), layer: 'rules' }
    const r = this.#resolveNow(key)
    if (r.ok) return { pending: r, map, mapName, registry }
    if (unpinned(mapName, r.resolution, registry)) return { pending: r.resolution, map, mapName, registry }
    return this.#answerOf(mapName, r.resolution, registry)
  }

  /** Resolves (the cache's slow path) when needed, then claims the pins a route needs (a pooled user new to this instance). */
  async #answerLater(p: Pending, started: number): Promise<Decided> {
    const r = 'kind' in p.pending ? p.pending : await this.#resolveLater(p.pending, p.map)
    if (r.kind === 'resolved' && r.resolution.kind === 'found' && routesMailboxes(p.mapName)) {
      // Within the lookup's deadline: what the directory left of it.
      await settlePins(r.resolution.mailboxes, p.registry, this.#o.deadlineMs - (performance.now() - started))
    }
    return this.#answerOf(p.mapName, r, p.registry)
  }

  #answerOf(mapName: MapName, r: KeyResolution, registry: Registry): Decided {
    if (r.kind === 'rules') return { answer: notFound(r.reason), layer: 'rules', mapName }
    if (r.kind === 'failed') return { answer: temp(r.reason), layer: 'none', mapName }
    return { answer: answerFor(mapName, r.resolution, registry, this.#o.routes), layer: r.layer, mapName }
  }

  /** Logs the failure (throttled) and returns the reason given to the peer. */
  #failure(map: string, address: string, error: unknown): string {
    const code = codeOf(error)
    const reason = describeError(error)
    if (isMailhostdError(error) && !error.transient) {
      // Data errors were already logged loudly where found; say here what Postfix was told.
      this.#dataErrors.run(`${code}:${address}`, (suppressed) =>
        this.#o.logger.error({ map, address, code, reason, suppressed }, 'answering temporary failure: directory data needs fixing'),
      )
    } else {
      this.#throttle.run(code, (suppressed) =>
        this.#o.logger.warn({ map, address, code, reason, suppressed }, 'answering temporary failure: directory unavailable and no usable cached answer'),
      )
    }
    return `${code} ${reason}`
  }
}

interface Decided {
  readonly answer: Answer
  readonly layer: Layer
  /** The map asked, when the name is a valid one (else it is no label value: see UNKNOWN_LABEL). */
  readonly mapName?: MapName
}

/** A lookup that must wait: for the cache's slow path, or for the store to claim a pool pin. */
interface Pending {
  readonly pending: CanonicalAddress | KeyResolution
  readonly map: string
  readonly mapName: MapName
  readonly registry: Registry
}

const isPending = (x: Decided | Pending): x is Pending => 'pending' in x

/** Whether answering `map` for `r` needs a pool pin this instance does not hold. */
function unpinned(map: MapName, r: KeyResolution, registry: Registry): boolean {
  return r.kind === 'resolved' && r.resolution.kind === 'found' && routesMailboxes(map) && needsPins(r.resolution.mailboxes, registry)
}
const decided = (resolution: KeyResolution) => ({ ok: false, resolution }) as const

const round = (ms: number) => Math.round(ms * 1000) / 1000

/** Map names come off the wire; keep logs and replies printable. */
function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f]/g, '?').slice(0, 64)
}
