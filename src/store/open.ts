// Chooses the store the configuration asks for and brings its schema up to date, so everything
// after start-up can assume the current schema.

import { toMs } from '../config/duration.js'
import type { Config } from '../config/schema.js'
import type { Logger } from '../log.js'
import { migrate } from './migrate.js'
import { openPglite } from './pglite.js'
import { openPostgres } from './postgres.js'
import type { Store } from './store.js'

export async function openStore(config: Config, logger: Logger): Promise<Store> {
  const { url, poolSize, connectTimeout, statementTimeout } = config.store
  const store =
    url === undefined
      ? await openPglite(config.dataDir)
      : await openPostgres(
          { url, poolSize, connectTimeoutMs: toMs(connectTimeout), statementTimeoutMs: toMs(statementTimeout) },
          logger,
        )
  if (store.kind === 'pglite') logger.info({ dataDir: config.dataDir }, 'store: embedded PGlite database')
  try {
    const { from, to } = await migrate(store, logger)
    if (from !== to) logger.info({ from, to }, 'store: schema migrated')
  } catch (e) {
    await store.close().catch(() => undefined)
    throw e
  }
  return store
}
