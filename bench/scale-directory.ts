// The generated directory of the scale benchmark: N accounts in the demo's LDAP shape
// (fixtures/ldap/demo.ldif: inetOrgPerson + inetLocalMailRecipient + mailhostdAccount, `mail`
// and `mailLocalAddress` both naming the primary address), spread over several domains and four
// backends, with the odd alias address, disabled account, send-as address and alias entry a
// real directory has. Everything is a pure function of the account number, so the load
// generator can draw any key and know its answer without holding the directory in memory.

import { createWriteStream } from 'node:fs'
import { once } from 'node:events'

export const SCALE_DOMAINS = ['example.org', 'example.co.uk', 'sales.example.com', 'staff.example.edu', 'example.de'] as const
export const SCALE_BACKENDS = [1, 2, 3, 4].map((n) => ({
  id: `mx${n}`,
  mailHosts: [`mx${n}.example.org`],
  address: `10.0.0.${10 + n}`,
  route: 'lmtp' as const,
}))

/** Every 10th account has a second address (mailLocalAddress), e.g. after a rename. */
const hasAlias = (i: number) => i % 10 === 3
const isDisabled = (i: number) => i % 50 === 7
const hasSendAs = (i: number) => i % 200 === 11
/** One alias entry (no mailHost: resolved when asked, never warmed) per this many accounts. */
const ALIAS_ENTRY_EVERY = 1000

export const domainOf = (i: number) => SCALE_DOMAINS[i % SCALE_DOMAINS.length]!
export const backendOf = (i: number) => SCALE_BACKENDS[i % SCALE_BACKENDS.length]!
export const primaryAddress = (i: number) => `user${i}@${domainOf(i)}`
export const aliasAddress = (i: number) => `u${i}.renamed@${domainOf(i)}`
/** What the transport map answers for any address of account i (the demo's LMTP route). */
export const routeOf = (i: number) => `lmtp:inet:[${backendOf(i).address}]:24`

/** Distinct addresses of mailbox entries, which is what the warm-up loads (demo.ldif adds 4). */
export function mailboxAddressCount(accounts: number): number {
  let aliases = Math.floor(accounts / 10)
  if (accounts % 10 > 3) aliases++
  return accounts + aliases
}

/** mailhostd config keys for the generated directory: its domains and backends. */
export function scaleClusterConfig(): { domains: { name: string }[]; backends: typeof SCALE_BACKENDS; health: { interval: number } } {
  return { domains: SCALE_DOMAINS.map((name) => ({ name })), backends: SCALE_BACKENDS, health: { interval: 0 } }
}

function accountLdif(i: number): string {
  const address = primaryAddress(i)
  let s =
    `dn: uid=user${i},ou=people,dc=example,dc=org\n` +
    'objectClass: inetOrgPerson\nobjectClass: inetLocalMailRecipient\nobjectClass: mailhostdAccount\n' +
    `uid: user${i}\ncn: User ${i}\nsn: ${i}\nmail: ${address}\nmailLocalAddress: ${address}\n`
  if (hasAlias(i)) s += `mailLocalAddress: ${aliasAddress(i)}\n`
  s += `mailHost: ${backendOf(i).mailHosts[0]}\nmailhostdAccountStatus: ${isDisabled(i) ? 'disabled' : 'active'}\n`
  if (hasSendAs(i)) s += `mailhostdSendAs: team${i}@${domainOf(i)}\n`
  return s + '\n'
}

function aliasEntryLdif(k: number, target: number): string {
  return (
    `dn: cn=list${k},ou=aliases,dc=example,dc=org\n` +
    'objectClass: nisMailAlias\nobjectClass: inetLocalMailRecipient\n' +
    `cn: list${k}\nmailLocalAddress: list${k}@${domainOf(target)}\nmailRoutingAddress: ${primaryAddress(target)}\n\n`
  )
}

/**
 * Writes the LDIF of `accounts` accounts (children of demo.ldif's ou=people and ou=aliases) to
 * `path`, in chunks with backpressure: a million entries are about 350 MB, never one string.
 */
export async function writeScaleLdif(path: string, accounts: number): Promise<void> {
  const out = createWriteStream(path)
  const CHUNK = 2000
  try {
    for (let start = 0; start < accounts; start += CHUNK) {
      let chunk = ''
      for (let i = start; i < Math.min(accounts, start + CHUNK); i++) {
        chunk += accountLdif(i)
        if (i % ALIAS_ENTRY_EVERY === ALIAS_ENTRY_EVERY - 1) chunk += aliasEntryLdif(i / ALIAS_ENTRY_EVERY, i - 1)
      }
      if (!out.write(chunk)) await once(out, 'drain')
    }
  } finally {
    out.end()
    await once(out, 'close')
  }
}

/** A random mailbox address of the whole set and its expected transport route. */
export function randomKey(accounts: number): { key: string; route: string } {
  const i = Math.floor(Math.random() * accounts)
  // An account with a second address is asked by either, as mail to it would be.
  const key = hasAlias(i) && Math.random() < 0.5 ? aliasAddress(i) : primaryAddress(i)
  return { key, route: routeOf(i) }
}
