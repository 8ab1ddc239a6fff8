// Versioned schema migrations, applied at start. Several instances may start together on one
// PostgreSQL: each migration runs in its own transaction under an advisory lock, so exactly one
// instance applies it and the others find it done. A database newer than this code is refused:
// running old code on a new schema could silently misread it.

import { ErrorCodes, MailhostdError, describeError, isMailhostdError } from '../errors.js'
import { silentLogger, type Logger } from '../log.js'
import { ADVISORY_LOCKS } from './locks.js'
import { MIGRATIONS } from './migrations/index.js'
import type { Queryable, Store } from './store.js'

export interface Migration {
  readonly version: number
  readonly name: string
  /** One statement per element: both engines run parameterised queries one statement at a time. */
  readonly statements: readonly string[]
}

export interface MigrationReport {
  /** Schema version found before migrating (0: empty database). */
  readonly from: number
  readonly to: number
}

const SCHEMA_TABLE = `create table if not exists schema_migrations (
  version integer primary key,
  name text not null,
  applied_at timestamptz not null default now()
)`

export const LATEST_VERSION = MIGRATIONS.at(-1)?.version ?? 0

/**
 * Brings the schema to the newest version this code knows. Waiting for another instance's lock
 * is bounded by the session's statement_timeout, so a stuck peer fails the start instead of
 * hanging it.
 */
export async function migrate(
  store: Store,
  logger: Logger = silentLogger,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<MigrationReport> {
  checkSequence(migrations)
  const latest = migrations.at(-1)?.version ?? 0
  let from: number | undefined
  for (;;) {
    const step = await store
      .transaction(async (tx) => {
        await tx.query(`select pg_advisory_xact_lock(${ADVISORY_LOCKS.migrate})`)
        await tx.query(SCHEMA_TABLE)
        const current = await schemaVersion(tx)
        if (current > latest) {
          throw new MailhostdError(
            ErrorCodes.STORE_MIGRATION,
            `the database schema is at version ${current}, newer than this mailhostd knows (${latest}): ` +
              'upgrade mailhostd, or point it at a database of its own version',
          )
        }
        const next = migrations.find((m) => m.version > current)
        if (next) await apply(tx, next)
        return { current, applied: next }
      })
      .catch((e: unknown) => {
        if (isMailhostdError(e)) throw e
        throw new MailhostdError(ErrorCodes.STORE_UNAVAILABLE, `cannot migrate the store: ${describeError(e)}`, { cause: e })
      })
    from ??= step.current
    if (!step.applied) return { from, to: step.current }
    logger.info({ version: step.applied.version, migration: step.applied.name }, 'store: applied schema migration')
  }
}

/** The highest applied version; 0 for a database that has none. */
export async function schemaVersion(q: Queryable): Promise<number> {
  const { rows } = await q.query<{ version: number | null }>('select max(version) as version from schema_migrations')
  return rows[0]?.version ?? 0
}

async function apply(tx: Queryable, m: Migration): Promise<void> {
  try {
    for (const sql of m.statements) await tx.query(sql)
    await tx.query('insert into schema_migrations (version, name) values ($1, $2)', [m.version, m.name])
  } catch (e) {
    throw new MailhostdError(ErrorCodes.STORE_MIGRATION, `migration ${m.version} (${m.name}) failed: ${describeError(e)}`, { cause: e })
  }
}

/** Versions must run 1, 2, 3 ...: a gap or a reordering is a packaging mistake, caught before any SQL. */
function checkSequence(migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new MailhostdError(
        ErrorCodes.STORE_MIGRATION,
        `migration list is out of sequence: position ${i + 1} holds version ${m.version}`,
      )
    }
  })
}
