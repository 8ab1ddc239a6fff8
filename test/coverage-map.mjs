// tap instruments the files this returns for each test file. It wants file paths (a directory
// prefix matches nothing), so list every product source file; tests and harness are not counted.
import { readdirSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const walk = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [relative(root, join(dir, e.name))] : [],
  )
const SOURCES = walk(join(root, 'src'))

export default function coverageMap() {
  return SOURCES
}
