// A migrated embedded store to copy instead of creating one per daemon: PGlite's first open
// (initdb inside WebAssembly) and the schema migrations cost a fresh mailhostd about two seconds
// of start-up, and the suite starts hundreds. One template per build of the store code, made once
// by whichever test process needs it first (others wait or reuse it), in the system temp dir.

import { createHash } from 'node:crypto'
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

/** The store code the template is made by: a change to any of it (a new migration) makes a new template. */
function storeCodeKey(root: string): string {
  const h = createHash('sha256')
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name.endsWith('.js')) h.update(e.name).update(readFileSync(p))
    }
  }
  walk(join(root, 'dist/store'))
  h.update(readFileSync(join(root, 'node_modules/@electric-sql/pglite/package.json')))
  return h.digest('hex').slice(0, 16)
}

let made: Promise<string> | undefined

/** The template's `pglite` directory, made on first use (dist/ must be built). */
export function pgliteTemplate(root: string): Promise<string> {
  return (made ??= (async () => {
    const final = join(tmpdir(), `mailhostd-pglite-template-${storeCodeKey(root)}`)
    if (existsSync(join(final, 'pglite'))) return join(final, 'pglite')
    // Made aside and renamed into place: a test process that loses the race finds a whole template.
    const work = mkdtempSync(join(tmpdir(), 'mailhostd-pglite-template-work-'))
    try {
      const { openPglite } = (await import(pathToFileURL(join(root, 'dist/store/pglite.js')).href)) as typeof import('../../src/store/pglite.js')
      const { migrate } = (await import(pathToFileURL(join(root, 'dist/store/migrate.js')).href)) as typeof import('../../src/store/migrate.js')
      const store = await openPglite(work)
      try {
        await migrate(store)
      } finally {
        await store.close()
      }
      try {
        renameSync(work, final)
      } catch (e) {
        if (!existsSync(join(final, 'pglite'))) throw e
      }
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
    return join(final, 'pglite')
  })())
}

/** A copy of the template as `<dataDir>/pglite`. */
export async function seedDataDir(root: string, dataDir: string): Promise<void> {
  cpSync(await pgliteTemplate(root), join(dataDir, 'pglite'), { recursive: true })
}
