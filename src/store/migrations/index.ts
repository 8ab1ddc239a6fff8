// Every schema migration, in version order. Migrations are code, not files read at run time, so
// the compiled daemon carries its schema with it. Append only: never edit or renumber one that
// has shipped, because databases remember which versions they have applied.

import type { Migration } from '../migrate.js'
import { initial } from './0001-initial.js'
import { admin } from './0002-admin.js'
import { health } from './0003-health.js'
import { crashRecovery } from './0004-crash-recovery.js'
import { pools } from './0005-pools.js'

export const MIGRATIONS: readonly Migration[] = [initial, admin, health, crashRecovery, pools]
