// The acceptance case table for the demo directory (architecture.md §7), run against every
// directory (in-memory fake, SQL on PGlite and PostgreSQL, LDAP on slapd) and every protocol.
// Expectations name backends by id; each test turns an id into that test's route string.

export interface DemoCase {
  readonly key: string
  /** Backend id owning the key, or undefined for an authoritative miss. */
  readonly owner?: 'mx1' | 'mx2'
  /** Expected `alias` map answer (virtual_alias_maps rewrite); undefined = no rewrite. */
  readonly alias?: string
  /** True when `local/<owner>` must find the key (a mailbox address, not an alias). */
  readonly local?: boolean
  readonly why: string
}

export const MAILHOST: Record<'mx1' | 'mx2', string> = { mx1: 'mx1.example.org', mx2: 'mx2.example.org' }

export const DEMO_FOUND: readonly DemoCase[] = [
  { key: 'alice@example.org', owner: 'mx1', local: true, why: 'exact address' },
  { key: 'ALICE@EXAMPLE.ORG', owner: 'mx1', local: true, why: 'upper case' },
  { key: 'Alice@Example.Org.', owner: 'mx1', local: true, why: 'mixed case, trailing dot' },
  { key: 'alice+tag@example.org', owner: 'mx1', local: true, why: 'address extension' },
  { key: 'alice.liddell@example.org', owner: 'mx1', alias: 'alice@example.org', local: true, why: 'alternate mailLocalAddress' },
  { key: 'postmaster@example.org', owner: 'mx1', alias: 'alice@example.org', why: 'alias' },
  { key: 'postmaster+x@example.org', owner: 'mx1', alias: 'alice+x@example.org', why: 'alias with extension' },
  { key: 'alice@example.net', owner: 'mx1', alias: 'alice@example.org', why: 'alias domain' },
  { key: 'whoever@example.com', owner: 'mx2', alias: 'bob@example.org', why: 'catch-all' },
  { key: 'bob@example.org', owner: 'mx2', local: true, why: 'account on the other backend' },
  { key: 'carol@example.org', owner: 'mx1', local: true, why: 'disabled account still routes' },
]

export const DEMO_MISSES: readonly DemoCase[] = [
  { key: 'nobody@example.org', why: 'unknown user' },
  { key: 'nobody+tag@example.org', why: 'unknown user with extension' },
  { key: 'nobody@example.net', why: 'unknown user in alias domain' },
  { key: '*', why: 'wildcard probe from trivial-rewrite' },
  { key: 'example.org', why: 'bare domain' },
  { key: '@example.org', why: 'empty local part' },
  { key: 'someone@unserved.test', why: 'unserved domain' },
  { key: 'alice@example.org@unserved.test', why: 'last @ decides the domain' },
  { key: 'a*)(mail=*@example.org', why: 'LDAP filter injection' },
  { key: '*@example.org', why: 'LDAP wildcard' },
  { key: 'al*@example.org', why: 'LDAP substring' },
  { key: "' or '1'='1@example.org", why: 'SQL injection' },
  { key: `${'a'.repeat(250)}@example.org`, why: 'longer than 254 octets' },
  // URL parsing of a host cuts at / \ ? # and percent-decodes: none of these is alice.
  { key: 'alice@example.org/evil', why: 'a path after the domain' },
  { key: 'alice@example.org\\evil', why: 'a backslash after the domain' },
  { key: 'alice@example.org?x', why: 'a query after the domain' },
  { key: 'alice@example.org#x', why: 'a fragment after the domain' },
  { key: 'alice@exa%6Dple.org', why: 'a percent-encoded domain' },
]
