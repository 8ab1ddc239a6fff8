// The generated directory the chaos tests run on, and the one place that says where each
// address must end up: accounts spread over mx1 and mx2, aliases to them, and the other keys a
// relay is asked about (address extensions, the alias domain example.net, the demo's example.com
// catch-all to bob on mx2). The tests compare what the sinks and the IMAP backends received with
// `Recipient.backend` and `Recipient.finalAddress` below.

import { createHash, randomBytes } from 'node:crypto'

export type BackendId = 'mx1' | 'mx2'

export interface ChaosAccount {
  readonly uid: string
  readonly address: string
  readonly backend: BackendId
  readonly password: string
}

export interface Recipient {
  /** What the sender puts in RCPT TO; a key of its own in mailhostd's cache. */
  readonly address: string
  readonly kind: 'account' | 'extension' | 'alias-domain' | 'alias' | 'catch-all'
  readonly backend: BackendId
  /** The envelope recipient the backend must see once Postfix applied the alias map. */
  readonly finalAddress: string
}

/** The demo's catch-all (fixtures/demo/mailhostd.yaml: example.com to bob, who lives on mx2). */
export const CATCH_ALL = { domain: 'example.com', target: 'bob@example.org', backend: 'mx2' } as const

/** A small seeded PRNG (mulberry32): the same run picks the same recipients in the same order. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

export function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[items[i], items[j]] = [items[j]!, items[i]!]
  }
  return items
}

/** {SSHA}: slapd verifies it on bind without modules, and Dovecot's scheme names it the same way. */
function ssha(password: string): string {
  const salt = randomBytes(8)
  const digest = createHash('sha1').update(password).update(salt).digest()
  return `{SSHA}${Buffer.concat([digest, salt]).toString('base64')}`
}

export function accounts(n: number, prefix = 'chaos'): ChaosAccount[] {
  return Array.from({ length: n }, (_, i) => {
    const uid = `${prefix}${String(i).padStart(5, '0')}`
    return { uid, address: `${uid}@example.org`, backend: i % 2 === 0 ? 'mx1' : 'mx2', password: `pw-${uid}` }
  })
}

/** inetLocalMailRecipient entries under the demo tree (fixtures/ldap/demo.ldif), for slapadd. */
export function accountsLdif(list: readonly ChaosAccount[]): string {
  return list
    .map((a) =>
      [
        `dn: uid=${a.uid},ou=people,dc=example,dc=org`,
        'objectClass: inetOrgPerson',
        'objectClass: inetLocalMailRecipient',
        'objectClass: mailhostdAccount',
        `uid: ${a.uid}`,
        `cn: ${a.uid}`,
        `sn: ${a.uid}`,
        `mail: ${a.address}`,
        `mailLocalAddress: ${a.address}`,
        `mailHost: ${a.backend}.example.org`,
        'mailhostdAccountStatus: active',
        `userPassword: ${ssha(a.password)}`,
        '',
      ].join('\n'),
    )
    .join('\n')
}

export interface MailDirectory {
  readonly ldif: string
  /** Every recipient key of the directory (catch-all keys are made up as the stream needs them). */
  readonly recipients: readonly Recipient[]
}

/**
 * `nAccounts` accounts and `nAliases` aliases (alias i points at account 7i mod n, so targets
 * spread over both backends), plus for every fifth account an extension key and an alias-domain
 * key. Every key is distinct: each is a cold cache entry until it is first used.
 */
export function mailDirectory(nAccounts: number, nAliases: number): MailDirectory {
  const list = accounts(nAccounts)
  const recipients: Recipient[] = []
  const aliasLdif: string[] = []
  for (const a of list) recipients.push({ address: a.address, kind: 'account', backend: a.backend, finalAddress: a.address })
  for (const [i, a] of list.entries()) {
    if (i % 5 !== 0) continue
    const ext = a.address.replace('@', '+chaos@')
    // Postfix keeps the extension: the alias map has nothing for an account's own address.
    recipients.push({ address: ext, kind: 'extension', backend: a.backend, finalAddress: ext })
    recipients.push({ address: `${a.uid}@example.net`, kind: 'alias-domain', backend: a.backend, finalAddress: a.address })
  }
  for (let i = 0; i < nAliases; i++) {
    const target = list[(7 * i) % list.length]!
    const cn = `chaos-alias${String(i).padStart(5, '0')}`
    aliasLdif.push(
      [
        `dn: cn=${cn},ou=aliases,dc=example,dc=org`,
        'objectClass: nisMailAlias',
        'objectClass: inetLocalMailRecipient',
        `cn: ${cn}`,
        `mailLocalAddress: ${cn}@example.org`,
        `mailRoutingAddress: ${target.address}`,
        '',
      ].join('\n'),
    )
    recipients.push({ address: `${cn}@example.org`, kind: 'alias', backend: target.backend, finalAddress: target.address })
  }
  return { ldif: `${accountsLdif(list)}\n${aliasLdif.join('\n')}`, recipients }
}

/** A catch-all key nobody asked for before: always cold. */
export function catchAllRecipient(n: number): Recipient {
  return { address: `anyone${n}@${CATCH_ALL.domain}`, kind: 'catch-all', backend: CATCH_ALL.backend, finalAddress: CATCH_ALL.target }
}
