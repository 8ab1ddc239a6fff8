// Brute-force brakes (docs/login.md): failed logins counted per client IP and per account over a
// sliding window. An IP past its thresholds is slowed down, then refused, whatever account it
// tries. An account past its thresholds is slowed down, then refused, but only for attempts
// from IPs that have failed themselves within the window: the owner on a clean address is
// never locked out by an attacker elsewhere. A success forgets that IP's failures on that
// account. In memory, per instance, bounded in keys.
//
// Keys: a client IP is counted by ipKey() (IPv4-mapped IPv6 as IPv4, IPv6 per prefix); an
// account by accountKey() (the directory entry the resolver found, whichever name was typed).
// Names that are no account are counted too, so that the brakes answer them exactly as they
// answer accounts (or they would tell an attacker which names exist), but in a room of their
// own: made-up names, which cost an attacker nothing, cannot push a real account's failures out.

import { LRUCache } from 'lru-cache'
import type { AccountKey } from '../resolve/login-account.js'
import { DEFAULT_IPV6_PREFIX, ipKey } from './ip-key.js'

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
  /** Prefix length IPv6 clients are counted by (ip-key.ts). */
  readonly ipv6Prefix?: number
  /** Keys per room: client IPs, accounts, names that are no account. */
  readonly maxKeys?: number
  readonly now?: () => number
}

export type BrakeScope = 'ip' | 'account'

export type BrakeVerdict =
  | { readonly action: 'pass' }
  | { readonly action: 'tarpit'; readonly seconds: number; readonly scope: BrakeScope }
  | { readonly action: 'refuse'; readonly scope: BrakeScope }

/**
 * Whose failures an attempt counts against: an account key, or undefined when the directory
 * could not say which account the name is. Such an attempt is judged as if its account were at
 * its refusal threshold, which under the rule above refuses it only from an IP that has failed
 * within the window: not knowing the account never unbrakes an attacker, and never locks out a
 * clean address.
 */
export type BrakeSubject = AccountKey | undefined

interface Failure {
  /** The other side of the pair: the account for an IP's list, the IP for an account's list. */
  readonly who: string
  readonly at: number
}

/** Stands for "no usable client IP" (doveadm, or not an IP address): such attempts are never considered clean. */
const NO_IP = '-'
/** An IP's failure on an account the directory could not name: matches no account's success. */
const NO_ACCOUNT = '\0'

/** An account key as an IP's list names it: the room too, so no made-up name can equal an account's id. */
const pairKey = (who: AccountKey) => `${who.room}\0${who.key}`

/**
 * Failures kept per key. Every threshold is far below it; it only bounds an account attacked
 * from very many addresses (each clean address gets its attempts before it counts as failed).
 */
const MAX_FAILURES_PER_KEY = 1000

export class Brakes {
  #o: BrakesOptions
  readonly #now: () => number
  readonly #byIp: LRUCache<string, Failure[]>
  readonly #rooms: Readonly<Record<AccountKey['room'], LRUCache<string, Failure[]>>>

  constructor(options: BrakesOptions) {
    this.#o = options
    this.#now = options.now ?? (() => Date.now())
    const max = options.maxKeys ?? 100_000
    this.#byIp = new LRUCache({ max })
    this.#rooms = { account: new LRUCache({ max }), unknown: new LRUCache({ max }) }
  }

  /**
   * New thresholds, delays and IPv6 prefix (a configuration reload); the failures counted so
   * far stay (under a changed prefix they count for the old keys until the window ends).
   */
  reconfigure(options: Pick<BrakesOptions, 'windowMs' | 'ip' | 'account' | 'tarpitMs' | 'maxTarpitMs' | 'ipv6Prefix'>): void {
    this.#o = { ...this.#o, ...options }
  }

  /** Decides before the password is checked. `ip` as the proxy sent it. */
  check(who: BrakeSubject, ip: string | undefined): BrakeVerdict {
    const client = this.#ipKey(ip)
    const ipFailures = this.#recent(this.#byIp, client ?? NO_IP).length
    const { ip: ipT, account: accT } = this.#o
    const accountFailures = who === undefined ? accT.refuseAfter : this.#recent(this.#rooms[who.room], who.key).length
    const clean = client !== undefined && ipFailures === 0
    if (ipFailures >= ipT.refuseAfter && client !== undefined) return { action: 'refuse', scope: 'ip' }
    if (!clean && accountFailures >= accT.refuseAfter) return { action: 'refuse', scope: 'account' }
    const overIp = client !== undefined && ipFailures >= ipT.tarpitAfter ? ipFailures - ipT.tarpitAfter : -1
    const overAccount = !clean && accountFailures >= accT.tarpitAfter ? accountFailures - accT.tarpitAfter : -1
    const over = Math.max(overIp, overAccount)
    if (over < 0) return { action: 'pass' }
    const ms = Math.min(this.#o.maxTarpitMs, this.#o.tarpitMs * 2 ** Math.min(over, 30))
    return { action: 'tarpit', seconds: Math.max(1, Math.round(ms / 1000)), scope: overIp >= overAccount ? 'ip' : 'account' }
  }

  /** A failed attempt; one whose account could not be told counts against its IP only. */
  failure(who: BrakeSubject, ip: string | undefined): void {
    const at = this.#now()
    const key = this.#ipKey(ip) ?? NO_IP
    this.#byIp.set(key, [...this.#recent(this.#byIp, key), { who: who === undefined ? NO_ACCOUNT : pairKey(who), at }].slice(-MAX_FAILURES_PER_KEY))
    if (who === undefined) return
    const room = this.#rooms[who.room]
    room.set(who.key, [...this.#recent(room, who.key), { who: key, at }].slice(-MAX_FAILURES_PER_KEY))
  }

  success(who: BrakeSubject, ip: string | undefined): void {
    if (who === undefined) return
    const key = this.#ipKey(ip) ?? NO_IP
    const pair = pairKey(who)
    this.#keep(this.#byIp, key, (f) => f.who !== pair)
    this.#keep(this.#rooms[who.room], who.key, (f) => f.who !== key)
  }

  #ipKey(ip: string | undefined): string | undefined {
    return ip === undefined ? undefined : ipKey(ip, this.#o.ipv6Prefix ?? DEFAULT_IPV6_PREFIX)
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
