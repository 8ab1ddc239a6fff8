// Mapping LDAP entries to accounts and aliases: the rules for odd data, without a server.

import t from 'tap'
import type { Entry } from 'ldapts'
import { requestedAttributes, statusOf, toDirectoryEntry, writtenStatus, type LdapEntryMapping } from '../../src/directory/ldap-entry.js'
import { DirectoryDataError, ErrorCodes } from '../../src/errors.js'

const mapping: LdapEntryMapping = {
  mailHost: 'mailHost',
  routingAddress: 'mailRoutingAddress',
  canonical: 'mail',
  status: 'mailhostdAccountStatus',
  sendAs: 'mailhostdSendAs',
  disabledValues: ['disabled', 'locked'],
  disabled: new Set(['disabled', 'locked']),
}
const dn = 'uid=x,ou=people,dc=example,dc=org'
const entry = (attrs: Record<string, string | string[] | Buffer>): Entry => ({ dn, ...attrs })

void t.test('accounts', async (t) => {
  t.same(toDirectoryEntry(entry({ mailHost: 'mx1.example.org', mail: 'x@example.org' }), mapping), {
    kind: 'account',
    id: dn,
    canonical: 'x@example.org',
    mailHost: 'mx1.example.org',
    status: 'active',
    sendAs: [],
  })
  t.match(
    toDirectoryEntry(entry({ mailHost: 'mx1', mailhostdSendAs: ['boss@example.org', ' @example.com ', ''] }), mapping),
    { sendAs: ['boss@example.org', '@example.com'] },
    'send-as values trimmed, blanks dropped',
  )
  t.match(
    toDirectoryEntry(entry({ mailHost: 'mx1', mail: 'x@example.org', mailRoutingAddress: 'real@example.org' }), mapping),
    { kind: 'account', canonical: 'real@example.org' },
    'mailRoutingAddress is the canonical address when present',
  )
  t.match(toDirectoryEntry(entry({ mailHost: 'mx1' }), mapping), { kind: 'account', canonical: undefined })
  t.match(
    toDirectoryEntry(entry({ mailHost: 'mx1', mail: ['first@example.org', 'second@example.org'] }), mapping),
    { canonical: 'first@example.org' },
    'the first value of a multi-valued primary address',
  )
  t.match(
    toDirectoryEntry(entry({ mailhost: 'mx1', MAIL: 'x@example.org', MailHostdAccountStatus: 'DISABLED' }), mapping),
    { mailHost: 'mx1', canonical: 'x@example.org', status: 'disabled' },
    'attribute names and status values compare case-insensitively',
  )
  t.match(toDirectoryEntry(entry({ mailHost: 'mx1', mailhostdAccountStatus: 'Locked' }), mapping), { status: 'disabled' })
  t.match(toDirectoryEntry(entry({ mailHost: 'mx1', mailhostdAccountStatus: 'active' }), mapping), { status: 'active' })
  t.match(toDirectoryEntry(entry({ mailHost: 'mx1', mailhostdAccountStatus: 'on-hold' }), mapping), { status: 'active' })
  t.match(toDirectoryEntry(entry({ mailHost: Buffer.from('mx2.example.org') }), mapping), { mailHost: 'mx2.example.org' })
  t.match(
    toDirectoryEntry(entry({ mailHost: ['  ', 'mx1'] }), mapping),
    { mailHost: 'mx1' },
    'a blank value does not count as a second host',
  )
  const noStatus = { ...mapping, status: '', canonical: '' }
  t.same(
    toDirectoryEntry(entry({ mailHost: 'mx1', mail: 'x@example.org', mailhostdAccountStatus: 'disabled' }), noStatus),
    { kind: 'account', id: dn, canonical: undefined, mailHost: 'mx1', status: 'active', sendAs: [] },
    "status '' means no status attribute; canonical '' means none",
  )
})

void t.test('aliases', async (t) => {
  t.same(toDirectoryEntry(entry({ mailRoutingAddress: 'alice@example.org' }), mapping), {
    kind: 'alias',
    id: dn,
    targets: ['alice@example.org'],
  })
  t.same(
    toDirectoryEntry(entry({ mailRoutingAddress: ['a@example.org', 'b@example.net'], mail: 'list@example.org' }), mapping),
    { kind: 'alias', id: dn, targets: ['a@example.org', 'b@example.net'] },
  )
})

void t.test('unusable entries are refused, naming the DN', async (t) => {
  const dataError = (code: string, re: RegExp) => ({ name: 'DirectoryDataError', code, message: re })
  t.throws(
    () => toDirectoryEntry(entry({ mail: 'x@example.org' }), mapping),
    dataError(ErrorCodes.DIRECTORY_DATA, /uid=x,ou=people.*neither mailHost nor mailRoutingAddress/),
  )
  t.throws(
    () => toDirectoryEntry(entry({ mailHost: ' ' }), mapping),
    dataError(ErrorCodes.DIRECTORY_DATA, /neither/),
    'a blank mailHost is no mailHost',
  )
  t.throws(
    () => toDirectoryEntry(entry({ mail: 'x@example.org' }), { ...mapping, routingAddress: '' }),
    dataError(ErrorCodes.DIRECTORY_DATA, /has no mailHost$/),
  )
  t.throws(
    () => toDirectoryEntry(entry({ mailHost: ['mx1', 'mx2'] }), mapping),
    dataError(ErrorCodes.DIRECTORY_DATA, /uid=x.*2 mailHost values/),
  )
  t.throws(
    () => toDirectoryEntry(entry({ mailHost: 'mx1', mailRoutingAddress: ['a@x.org', 'b@x.org'] }), mapping),
    dataError(ErrorCodes.DIRECTORY_DATA, /2 mailRoutingAddress values/),
  )
  try {
    toDirectoryEntry(entry({}), mapping)
    t.fail('expected a DirectoryDataError')
  } catch (e) {
    t.ok(e instanceof DirectoryDataError)
    t.equal((e as DirectoryDataError).transient, false, 'data errors need a human')
  }
})

void t.test('requested attributes', async (t) => {
  t.same(requestedAttributes(mapping), ['mailHost', 'mailRoutingAddress', 'mail', 'mailhostdAccountStatus', 'mailhostdSendAs'])
  t.same(
    requestedAttributes({ ...mapping, routingAddress: '', status: '', sendAs: '', canonical: 'MAILHOST' }),
    ['mailHost'],
    'empty names and case-insensitive duplicates are dropped',
  )
  t.notOk(requestedAttributes(mapping).some((a) => /password/i.test(a)))
})

void t.test('the disabled rule reads and writes alike', async (t) => {
  // The writer stores what writtenStatus says; reading the entry back must give the same status.
  for (const disabledValues of [['disabled', 'locked'], ['Locked', 'inactive'], ['LOCKED']]) {
    const m = { ...mapping, disabledValues }
    for (const status of ['active', 'disabled'] as const) {
      const written = writtenStatus(status, m)
      t.type(written, 'string', `${status} is writable with ${disabledValues.join(', ')}`)
      t.equal(statusOf(entry({ mailHost: 'mx1', mailhostdAccountStatus: written! }), m), status, `${status} reads back (${written})`)
    }
  }
  t.equal(writtenStatus('disabled', { ...mapping, disabledValues: ['locked', 'DISABLED'] }), 'DISABLED', 'disabled itself is preferred, as configured')
  t.equal(writtenStatus('disabled', { ...mapping, disabledValues: ['Locked', 'inactive'] }), 'Locked', 'else the first value, as configured')
  t.equal(writtenStatus('active', { ...mapping, status: '' }), undefined, 'no status attribute: an active account writes nothing')
  t.equal(writtenStatus('disabled', { ...mapping, status: '' }), null, 'no status attribute: disabled cannot be written')
  t.equal(writtenStatus('disabled', { ...mapping, disabledValues: [] }), null, 'no disabled values: disabled cannot be written')
  t.equal(statusOf(entry({ mailhostdAccountStatus: ['active', 'locked'] }), mapping), 'disabled', 'any disabled value disables')
  t.equal(statusOf(entry({}), mapping), 'active', 'no status value: active')
})
