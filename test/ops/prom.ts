// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- tap compiles each test file alone; this brings the declarations in
/// <reference path="../types/parse-prometheus-text-format.d.ts" />
// Reads /metrics the way Prometheus does: a real text-format parser, then sums of samples by
// name and labels, so tests assert that counters moved rather than match text.
//
// parse-prometheus-text-format folds a histogram's series into one sample and drops their labels
// (it mirrors prom2json for unlabelled histograms only). So the text is parsed twice: as it is,
// for the families' types and help, and without the histogram and summary TYPE lines, which makes
// their _bucket, _sum and _count series plain labelled samples.

import parsePrometheusTextFormat, { type PromFamily, type PromSample } from 'parse-prometheus-text-format'

export class Scrape {
  readonly families: ReadonlyMap<string, PromFamily>
  readonly #series: ReadonlyMap<string, readonly PromSample[]>

  constructor(text: string) {
    this.families = new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f]))
    const untyped = text.replace(/^# TYPE \S+ (histogram|summary)\n/gm, '')
    // Without their TYPE, one histogram's series come back as a family per run of lines: merge them.
    const series = new Map<string, PromSample[]>()
    for (const f of parsePrometheusTextFormat(untyped)) series.set(f.name, [...(series.get(f.name) ?? []), ...f.metrics])
    this.#series = series
  }

  family(name: string): PromFamily {
    const f = this.families.get(name)
    if (!f) throw new Error(`no metric family ${name}; have ${[...this.families.keys()].filter((n) => n.startsWith('mailhostd')).join(', ')}`)
    return f
  }

  /** The sum of a counter's or gauge's samples whose labels include `labels`. */
  value(name: string, labels: Record<string, string> = {}): number {
    return this.#matching(name, labels).reduce((sum, s) => sum + Number(s.value), 0)
  }

  /** How many observations a histogram's series matching `labels` hold. */
  count(name: string, labels: Record<string, string> = {}): number {
    return this.value(`${name}_count`, labels)
  }

  #matching(name: string, labels: Record<string, string>) {
    // A declared family without samples yet (a labelled metric nobody observed) sums to 0.
    const samples = this.#series.get(name) ?? (this.family(name.replace(/_(count|sum|bucket)$/, '')) && [])
    return samples.filter((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v))
  }
}

export async function scrape(port: number): Promise<Scrape> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(10_000) })
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`)
  if (!(res.headers.get('content-type') ?? '').startsWith('text/plain')) throw new Error(`/metrics content type ${res.headers.get('content-type')}`)
  return new Scrape(await res.text())
}
