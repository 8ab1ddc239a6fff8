// What a login name stands for (docs/login.md, "Who may log in"): the one place that decides
// which account a name typed into a mail client, a proxy's login or Postfix's sasl_username
// is. The login router, the sender-login check and every per-account counter (the brakes, the
// auth policy, the rate limits by sasl_username) ask it, so `ALICE@example.org`,
// `alice+x@example.org` and `alice@example.net` (an alias domain) are one account everywhere.

import type { KeyResolution } from './lookup-service.js'
import type { Mailbox } from './resolver.js'

export type LoginAccount =
  /** Exactly one mailbox, reached by its own address, an alternate or an alias domain. */
  | { readonly kind: 'account'; readonly mailbox: Mailbox }
  /** The directory answered: no account by this name (unknown, an alias, a catch-all, not an address). */
  | { readonly kind: 'none'; readonly reason: 'no such user' | 'not a mailbox'; readonly name: string }
  /** The directory could not answer: which account this is cannot be told now. */
  | { readonly kind: 'failed'; readonly reason: string }

export function loginAccount(r: KeyResolution, typed: string): LoginAccount {
  if (r.kind === 'failed') return { kind: 'failed', reason: r.reason }
  // A name that is not an address, or not in a served domain, is counted as written (folded:
  // mail clients and proxies vary the case, and a counter must not).
  if (r.kind === 'rules') return { kind: 'none', reason: 'no such user', name: typed.trim().toLowerCase() }
  if (r.resolution.kind === 'none') return { kind: 'none', reason: 'no such user', name: r.address.address }
  const { via, mailboxes } = r.resolution
  // Aliases and catch-alls are not accounts to log in as, even when they reach one mailbox.
  if ((via !== 'account' && via !== 'alias-domain') || mailboxes.length !== 1) return { kind: 'none', reason: 'not a mailbox', name: r.address.address }
  return { kind: 'account', mailbox: mailboxes[0]! }
}

/**
 * The counter a login is counted under by every per-account limit. Names that are no account
 * get a room of their own, so a flood of made-up names cannot push real accounts' counts out of
 * a bounded memory; a name the directory could not resolve has no key at all: each counter says
 * what it does then, and none may treat it as an unknown name (an error is not "not found").
 */
export type AccountKey = { readonly room: 'account' | 'unknown'; readonly key: string; readonly display: string }

export function accountKey(a: LoginAccount): AccountKey | undefined {
  if (a.kind === 'failed') return undefined
  // The directory entry's id: one account has one, whichever of its addresses was typed.
  if (a.kind === 'account') return { room: 'account', key: a.mailbox.id, display: a.mailbox.address }
  return { room: 'unknown', key: a.name, display: a.name }
}
