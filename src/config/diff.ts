// What a configuration reload (SIGHUP) changes: the keys whose values differ between the running
// configuration and the file, split into those the daemon applies while running and those that
// need a restart (the store, the directory, the cache's size, ...). A reload applies the first
// kind and keeps the running values of the second, so the daemon never runs half of a setting it
// cannot switch (a new store URL with the old connection pool).

import type { Config } from './schema.js'

/**
 * Keys (and everything under them) a reload applies while running; docs/operations.md says how.
 * Every other key needs a restart: a key added to the schema is restart-only until the daemon
 * learns to apply it, never silently half-applied.
 */
export const LIVE_KEYS = [
  'log.level',
  'lookup.deadline',
  'cache.ttl',
  'cache.negativeTtl',
  'cache.maxStale',
  'routing',
  'policy',
  'login',
  'admin.tokens',
  'admin.readEndpoints',
  'health',
  'domains',
  'backends',
  'listen',
] as const

export interface ConfigDiff {
  /** Changed keys the daemon applies while running, dotted (`cache.ttl`, `policy.ruleSets.mx`). */
  readonly live: readonly string[]
  /** Changed keys that take effect only at a restart; a reload keeps their running values. */
  readonly restart: readonly string[]
}

type Path = readonly string[]

export function diffConfig(running: Config, next: Config): ConfigDiff {
  const changed: Path[] = []
  collect(running, next, [], changed)
  const live: string[] = []
  const restart: string[] = []
  for (const path of changed) (isLive(path) ? live : restart).push(dotted(path))
  return { live, restart }
}

/** Whether any changed key is `key` or lies under it. */
export function touches(diff: ConfigDiff, key: string): boolean {
  return diff.live.some((k) => k === key || k.startsWith(`${key}.`) || k.startsWith(`${key}[`))
}

/** `next` with the running values of every key that needs a restart: what a reload runs with. */
export function applicableConfig(running: Config, next: Config): Config {
  const out = structuredClone(next) as unknown as Record<string, unknown>
  const changed: Path[] = []
  collect(running, next, [], changed)
  for (const path of changed) if (!isLive(path)) setAt(out, path, getAt(running, path))
  return out as unknown as Config
}

function isLive(path: Path): boolean {
  const key = dotted(path)
  return LIVE_KEYS.some((live) => key === live || key.startsWith(`${live}.`))
}

const dotted = (path: Path) => path.join('.')

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Paths of the leaves that differ; arrays count as one value (a list of backends changed). */
function collect(a: unknown, b: unknown, path: Path, out: Path[]): void {
  if (isRecord(a) && isRecord(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) collect(a[k], b[k], [...path, k], out)
    return
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push(path)
}

function getAt(root: unknown, path: Path): unknown {
  let node = root
  for (const k of path) node = isRecord(node) ? node[k] : undefined
  return structuredClone(node)
}

function setAt(root: Record<string, unknown>, path: Path, value: unknown): void {
  let node = root
  for (const k of path.slice(0, -1)) {
    if (!isRecord(node[k])) node[k] = {}
    node = node[k] as Record<string, unknown>
  }
  const last = path[path.length - 1]!
  if (value === undefined) delete node[last]
  else node[last] = value
}
