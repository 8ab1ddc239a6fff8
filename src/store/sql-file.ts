// Loads a SQL file (fixtures, operator-provided seed data) into the store. The whole file is sent
// as one simple-protocol message, which PostgreSQL and PGlite run as a single implicit
// transaction: a file that fails halfway leaves nothing behind.

import { readFile } from 'node:fs/promises'
import type { Store } from './store.js'

export async function applySqlFile(store: Store, path: string): Promise<void> {
  const sql = await readFile(path, 'utf8')
  await store.exec(sql)
}
