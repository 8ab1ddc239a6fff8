// Brute-force brakes (docs/login.md): failed logins counted per client IP and per account over a
// sliding window. An IP past its thresholds is slowed down, then refused, whatever account it
// tries. An account past its thresholds is slowed down, then refused, but only for attempts
// from IPs that have failed themselves within the window: the owner on a clean address is
// never locked out by an attacker elsewhere. A success forgets that IP's failures on that
// account. In memory, per instance, bounded in keys.

import { LRUCache } from 'lru-cache'

export interface BrakeThresholds {
  readonly tarpitAfter: number
  readonly refuseAfter: number
}

export interface BrakesOptions {
  readonly windowMs: number
  readonly ip: BrakeThresholds
  readonly account: BrakeThresholds
  /** First tarpit delay; doubles with each further failure up to maxTarpitMs. */
  readonly tarpitMs: number
  readonly maxTarpitMs: number
  readonly maxKeys?: number
  readonly now?: () => number
}

export type BrakeScope = 'ip' | 'account'

export type BrakeVerdict =
  | { readonly action: 'pass' }
  | { readonly action: 'tarpit'; readonly seconds: number; readonly scope: BrakeScope }
  | { readonly action: 'refuse'; readonly scope: BrakeScope }

interface Failure {
  /** The other side of the pair: the account for an IP's list, the IP for an account's list. */
  readonly who: string
  readonly at: number
}

/** Stands for "no client IP known" (doveadm): such attempts are never considered clean. */
const NO_IP = '-'

/**
 * Failures kept per key. Every threshold is far below it; it only bounds an account attacked
 * from very many addresses (each clean address gets its attempts before it counts as failed).
 */
const MAX_FAILURES_PER_KEY = 1000

export class Brakes {
  #o: BrakesOptions
  readonly #now: () => number
  readonly #byIp: LRUCache<string, Failure[]>
  readonly #byAccount: LRUCache<string, Failure[]>

  constructor(options: BrakesOptions) {
    this.#o = options
    this.#now = options.now ?? (() => Date.now())
    this.#byIp = new LRUCache({ max: options.maxKeys ?? 100_000 })
    this.#byAccount = new LRUCache({ max: options.maxKeys ?? 100_000 })
  }

  /** New thresholds and delays (a configuration reload); the failures counted so far stay. */
  reconfigure(options: Pick<BrakesOptions, 'windowMs' | 'ip' | 'account' | 'tarpitMs' | 'maxTarpitMs'>): void {
    this.#o = { ...this.#o, ...options }
  }

  /** Decides before the password is checked. */
  check(account: string, ip: string | undefined): BrakeVerdict {
    const ipFailures = this.#recent(this.#byIp, ip ?? NO_IP).length
    const accountFailures = this.#recent(this.#byAccount, account).length
    const clean = ip !== undefined && ipFailures === 0
    const { ip: ipT, account: accT } = this.#o
    if (ipFailures >= ipT.refuseAfter && ip !== undefined) return { action: 'refuse', scope: 'ip' }
    if (!clean && accountFailures >= accT.refuseAfter) return { action: 'refuse', scope: 'account' }
    const overIp = ip !== undefined && ipFailures >= ipT.tarpitAfter ? ipFailures - ipT.tarpitAfter : -1
    const overAccount = !clean && accountFailures >= accT.tarpitAfter ? accountFailures - accT.tarpitAfter : -1
    const over = Math.max(overIp, overAccount)
    if (over < 0) return { action: 'pass' }
    const ms = Math.min(this.#o.maxTarpitMs, this.#o.tarpitMs * 2 ** Math.min(over, 30))
    return { action: 'tarpit', seconds: Math.max(1, Math.round(ms / 1000)), scope: overIp >= overAccount ? 'ip' : 'account' }
  }

  failure(account: string, ip: string | undefined): void {
    const at = this.#now()
    const key = ip ?? NO_IP
    this.#byIp.set(key, [...this.#recent(this.#byIp, key), { who: account, at }].slice(-MAX_FAILURES_PER_KEY))
    this.#byAccount.set(account, [...this.#recent(this.#byAccount, account), { who: key, at }].slice(-MAX_FAILURES_PER_KEY))
  }

  success(account: string, ip: string | undefined): void {
    const key = ip ?? NO_IP
    this.#keep(this.#byIp, key, (f) => f.who !== account)
    this.#keep(this.#byAccount, account, (f) => f.who !== key)
  }

  #recent(map: LRUCache<string, Failure[]>, key: string): Failure[] {
    const list = map.get(key)
    if (!list) return []
    const since = this.#now() - this.#o.windowMs
    return list[0]!.at > since ? list : list.filter((f) => f.at > since)
  }

  #keep(map: LRUCache<string, Failure[]>, key: string, keep: (f: Failure) => boolean): void {
    const list = this.#recent(map, key).filter(keep)
    if (list.length === 0) map.delete(key)
    else map.set(key, list)
  }
}
