// Does a login own an envelope sender? Pure: the resolutions come in, a verdict goes out.
// Owned: the login's own address and its alternates (with any extension), addresses in alias
// domains that reach it, aliases that deliver to it, and its send-as list (exact addresses or
// `@domain`). Not owned: a catch-all that happens to reach it (that would let one user send as
// every unknown address of a domain), and anything else.

import { canonicalAddress, canonicalDomain, type AddressOptions, type CanonicalAddress } from '../resolve/address.js'
import type { Mailbox, Resolution } from '../resolve/resolver.js'

export function ownsSender(
  login: Mailbox,
  sender: CanonicalAddress,
  senderResolution: Resolution | undefined,
  addresses: AddressOptions,
): boolean {
  if (senderResolution?.kind === 'found' && senderResolution.via !== 'catch-all') {
    if (senderResolution.mailboxes.some((m) => m.id === login.id)) return true
  }
  return login.sendAs.some((entry) => sendAsMatches(entry, sender, addresses))
}

function sendAsMatches(entry: string, sender: CanonicalAddress, addresses: AddressOptions): boolean {
  const e = entry.trim()
  if (e.startsWith('@')) return canonicalDomain(e.slice(1)) === sender.domain
  const allowed = canonicalAddress(e, addresses)
  if (!allowed.ok) return false
  // An allowed address also covers its extensions (boss+news@ for boss@).
  return allowed.address === sender.address || allowed.address === sender.base
}
