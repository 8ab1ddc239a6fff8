// Reading one figure from mailhostd's /metrics (names in src/metrics.ts): the number of
// directory `find` calls, summed over results, as the daemon itself counts them.

const FIND_COUNT = /^mailhostd_directory_call_duration_seconds_count\{([^}]*)\} (\d+(?:\.\d+)?(?:e\+?\d+)?)$/gm

export function directoryFindCount(metricsText: string): number {
  let total = 0
  for (const m of metricsText.matchAll(FIND_COUNT)) if (/operation="find"/.test(m[1]!)) total += Number(m[2])
  return total
}

export async function scrapeDirectoryFinds(httpPort: number): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${httpPort}/metrics`)
  if (!r.ok) throw new Error(`/metrics: HTTP ${r.status}`)
  return directoryFindCount(await r.text())
}
