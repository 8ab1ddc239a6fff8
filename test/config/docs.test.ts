// docs/configuration.md must mention every configuration key, so the reference cannot drift
// from the schema that validates real files.

import { readFileSync } from 'node:fs'
import t from 'tap'
import { ConfigSchema } from '../../src/config/schema.js'

type Node = { properties?: Record<string, Node>; items?: Node; anyOf?: Node[] }

/**
 * Keys a reader sets: leaves, and unions (like `listen.socketmap: false | {...}`) as a whole, but
 * the keys of every variant of a union of sections (`directory`, one variant per type).
 */
function leafKeys(node: Node, path: string, out: string[], whole: readonly string[]): string[] {
  if (node.anyOf?.every((v) => v.properties)) {
    for (const variant of node.anyOf) for (const k of leafKeys(variant, path, [], whole)) if (!out.includes(k)) out.push(k)
  } else if (path && (node.anyOf || whole.includes(path))) out.push(path)
  else if (node.properties) for (const [k, child] of Object.entries(node.properties)) leafKeys(child, path ? `${path}.${k}` : k, out, whole)
  else if (node.items?.properties) leafKeys(node.items, `${path}[]`, out, whole)
  else out.push(path)
  return out
}

t.test('every config key is documented', async (t) => {
  const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8')
  // listen.tcpTable entries are described in one row, which names their fields.
  const all = leafKeys(ConfigSchema as unknown as Node, '', [], ['listen.tcpTable'])
  const undocumented = all.filter((k) => !doc.includes(`\`${k}\``))
  t.same(undocumented, [], 'keys missing from docs/configuration.md')
})
