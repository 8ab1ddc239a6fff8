// Durations as written in the config ("500ms", "3s", "2m", "1h", "1d", or plain seconds).

import type { DurationValue } from './schema.js'

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

export function toMs(value: DurationValue): number {
  if (typeof value === 'number') return value * 1000
  const m = /^\s*(\d+)\s*(ms|s|m|h|d)?\s*$/.exec(value)
  if (!m) throw new RangeError(`not a duration: ${JSON.stringify(value)}`)
  return Number(m[1]) * UNIT_MS[m[2] ?? 's']!
}
