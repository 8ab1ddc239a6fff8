// mailhostd's own account of a chaos run, from /metrics: how many answers were served stale,
// how many lookups ended TEMP, how many logins failed temporarily. Summed over label sets with a
// plain text scan: the counters are all the report needs.

export type Sample = { labels: Record<string, string>; value: number }

export async function scrape(httpPort: number): Promise<Map<string, Sample[]>> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()
  const out = new Map<string, Sample[]>()
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) continue
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]))
    const list = out.get(m[1]!) ?? []
    list.push({ labels, value: Number(m[3]) })
    out.set(m[1]!, list)
  }
  return out
}

/** The sum of `name` over the samples whose labels include `match`. */
export function total(metrics: Map<string, Sample[]>, name: string, match: Record<string, string> = {}): number {
  return (metrics.get(name) ?? [])
    .filter((s) => Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0)
}
