// directory.type sql: the accounts tables in the store's own database. Writes commit in the
// admin request's transaction, and nothing changes them behind mailhostd's back, so there is
// no watcher.

import { SqlDirectoryConfig } from '../../config/schema.js'
import { SqlMailboxAddresses } from '../mailbox-addresses.js'
import { SqlAccountWriter } from '../sql-accounts.js'
import { SqlDirectory } from '../sql.js'
import { defineDirectoryDriver } from './driver.js'

export const sqlDriver = defineDirectoryDriver({
  name: 'sql',
  config: SqlDirectoryConfig,
  lookups: (_, { store, passwords }) => new SqlDirectory(store, passwords),
  mailboxAddresses: (_, { store }) => new SqlMailboxAddresses(store),
  accountWrites: (_, { store }) => ({ writer: new SqlAccountWriter(store), terms: { passwordScheme: 'ARGON2ID', intentGraceMs: 0 } }),
  watcher: () => undefined,
})
