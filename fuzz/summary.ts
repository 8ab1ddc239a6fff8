// The summary table printed at the end of a run, in markdown so it can go into
// docs/reliability.md as printed.

import type { CodecResult } from './codec-fuzz.js'
import type { HttpResult } from './listeners/http-fuzz.js'
import type { ListenerResult } from './listeners/listener-fuzz.js'

const n = (x: number) => x.toLocaleString('en-US')
const ms = (x: number) => (x < 10 ? x.toFixed(2) : x.toFixed(0))

export function codecTable(rows: readonly CodecResult[]): string {
  const lines = [
    '| codec | frames | inputs | bytes | crashes | hangs | invariant violations | mean µs per input | max ms per input | inputs ending in a request / malformed / too-large / incomplete |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|---|',
  ]
  for (const r of rows) {
    const e = (k: string) => n(r.endings[k] ?? 0)
    lines.push(`| ${r.codec} | ${n(r.frames)} | ${n(r.inputs)} | ${n(r.bytes)} | ${r.crashes} | ${r.hangs.length} | ${r.violations} | ${(r.totalNs / Math.max(1, r.inputs) / 1e3).toFixed(1)} | ${ms(r.maxNs / 1e6)} | ${e('request')} / ${e('malformed')} / ${e('too-large')} / ${e('nothing')} |`)
  }
  return lines.join('\n')
}

export function listenerTable(rows: readonly ListenerResult[], http: HttpResult | undefined): string {
  const lines = [
    '| listener | frames | connections | crashes | hangs | wrong or malformed replies | canaries (failed) | max ms to answer and close | max ms to close an open connection |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|',
  ]
  for (const r of rows) {
    lines.push(`| ${r.listener} | ${n(r.frames)} | ${n(r.connections)} | ${r.crash ? 1 : 0} | ${r.hangs} | ${r.violations} | ${r.canaries} (${r.canaryFailures}) | ${ms(r.maxMs)} | ${ms(r.maxOpenMs)} |`)
  }
  if (http) lines.push(`| http (nginx auth, lookup, passdb, garbage) | ${n(http.requests)} | ${n(http.requests)} | 0 | ${http.hangs} | ${http.violations} | 1 (${http.canaryFailures}) | ${ms(http.maxMs)} | - |`)
  return lines.join('\n')
}

/** Details of every failure kept, with what replays it. */
export function failureLines(codecs: readonly CodecResult[], listeners: readonly ListenerResult[], http: HttpResult | undefined): string[] {
  const out: string[] = []
  for (const c of codecs) {
    for (const f of c.failures) out.push(`codec ${c.codec} input ${f.input} (replay: FUZZ_REPLAY='${c.codec}:${f.input}'): ${f.violation}`)
    for (const h of c.hangs) out.push(`codec ${c.codec} input ${h} (replay: FUZZ_REPLAY='${c.codec}:${h}'): hung`)
  }
  for (const l of listeners) {
    if (l.crash) out.push(`listener ${l.listener}: ${l.crash}`)
    for (const f of l.failures) out.push(`listener ${l.listener} connection ${f.input}: ${f.why}`)
  }
  for (const f of http?.failures ?? []) out.push(`http request ${f.input}: ${f.why}`)
  return out
}
