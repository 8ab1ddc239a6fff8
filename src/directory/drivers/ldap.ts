// directory.type ldap: an existing LDAP server (directory.ldap). Writes need directory.ldap.admin
// (without it the directory is read-only for mailhostd), and changes made with other tools are
// seen by polling modifyTimestamp (directory.ldap.pollInterval).

import { LdapDirectoryConfig } from '../../config/schema.js'
import { toMs } from '../../config/duration.js'
import { LdapAccountWriter } from '../ldap-accounts.js'
import { LdapWatcher } from '../ldap-watch.js'
import { LdapDirectory } from '../ldap.js'
import { LdapMailboxAddresses } from '../mailbox-addresses.js'
import { defineDirectoryDriver } from './driver.js'

export const ldapDriver = defineDirectoryDriver({
  name: 'ldap',
  config: LdapDirectoryConfig,
  lookups: ({ ldap }, { logger, passwords }) => new LdapDirectory(ldap, logger, passwords),
  mailboxAddresses: ({ ldap }, { logger }) => new LdapMailboxAddresses(ldap, logger),
  accountWrites: ({ ldap }, { logger }) => ({
    writer: ldap.admin ? new LdapAccountWriter(ldap, logger) : undefined,
    terms: {
      // slapd's pw-sha2 module binds with it; Argon2 needs a module most servers lack.
      passwordScheme: 'SSHA512',
      intentGraceMs: toMs(ldap.timeout),
      readOnly: 'the LDAP directory is read-only for mailhostd: configure directory.ldap.admin to manage accounts',
    },
  }),
  watcher: ({ ldap }, { logger, addresses }, sink) =>
    toMs(ldap.pollInterval) > 0
      ? new LdapWatcher(ldap, addresses, logger, (changed, ids) => sink.entries(changed, ids), {
          // More changed entries than one poll could read: which keys they touched is unknown.
          onResync: () => sink.resync(),
        })
      : undefined,
})
