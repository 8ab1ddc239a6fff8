// The status page as HTML: one self-contained document (inline CSS, no script, no external
// asset), rendered on the server from a StatusSnapshot. Every interpolated value goes through
// the `html` tag, which escapes it unless it is markup this module built: addresses, audit
// subjects and probe errors come from users and remote peers. States are spelled out in text,
// so the page reads the same without colour.

import { COUNTS_MAX_AGE_MS } from '../admin/account-counts.js'
import type { Principal } from '../admin/tokens.js'
import type { BackendStatus, PoolStatus, ServiceStatus, StatusSnapshot } from './status-data.js'

/** The browser reloads the page this often (meta refresh); a login prompt's credentials are resent. */
export const REFRESH_SECONDS = 30

/** Markup built by the `html` tag: interpolated into another template, it is not escaped again. */
class Markup {
  constructor(readonly text: string) {}
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]!)
}

type Value = Markup | string | number | readonly Value[]

function fragment(v: Value): string {
  if (v instanceof Markup) return v.text
  if (typeof v === 'string' || typeof v === 'number') return escapeHtml(String(v))
  return v.map(fragment).join('')
}

function html(strings: TemplateStringsArray, ...values: Value[]): Markup {
  let out = strings[0]!
  values.forEach((v, i) => (out += fragment(v) + strings[i + 1]!))
  return new Markup(out)
}

const STYLE = `
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --bg: #fff; --panel: #f6f8fa;
  --up: #1a7f37; --down: #cf222e; --warn: #9a6700; --none: #6e7781; --bar: #0969da; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #9198a1; --line: #3d444d; --bg: #0d1117; --panel: #151b23;
  --up: #3fb950; --down: #f85149; --warn: #d29922; --none: #9198a1; --bar: #4493f8; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, "DejaVu Sans", sans-serif; color: var(--fg); background: var(--bg); }
header, main { max-width: 72rem; margin: 0 auto; padding: 0 1rem; }
header { padding-top: 1rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 1.5rem 0 .5rem; }
.meta, .empty { color: var(--muted); margin: 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .4rem .6rem; border-bottom: 1px solid var(--line); }
thead th { font-size: .85rem; color: var(--muted); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
small { color: var(--muted); }
ul.services { list-style: none; margin: 0; padding: 0; }
.state { display: inline-block; padding: 0 .45rem; border-radius: .3rem; font-size: .8rem; font-weight: 700;
  letter-spacing: .02em; color: #fff; white-space: nowrap; }
.state-up { background: var(--up); }
.state-down { background: var(--down); }
.state-maintenance { background: var(--warn); }
.state-not-probed { background: var(--none); }
.share { display: flex; align-items: center; gap: .5rem; min-width: 10rem; }
.bar { flex: 1; height: .8rem; background: var(--panel); border: 1px solid var(--line); border-radius: .2rem; overflow: hidden; }
.bar > span { display: block; height: 100%; background: var(--bar); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(11rem, 1fr)); gap: .75rem; margin: 0; }
.cards div { background: var(--panel); border: 1px solid var(--line); border-radius: .4rem; padding: .6rem .8rem; }
.cards dt { font-size: .85rem; color: var(--muted); }
.cards dd { margin: 0; font-size: 1.4rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.problem { border-left: 4px solid var(--down); background: var(--panel); padding: .4rem .7rem; margin: .5rem 0; }
/* Narrow screens: each row becomes a card of labelled lines instead of a table to scroll. */
@media (max-width: 40rem) {
  table.stack thead { display: none; }
  table.stack tr { display: block; padding: .5rem 0; border-bottom: 1px solid var(--line); }
  table.stack th, table.stack td { display: block; border: 0; padding: .15rem .2rem; text-align: left; }
  table.stack td[data-label]::before { content: attr(data-label) ": "; color: var(--muted); font-size: .85rem; }
}
time { white-space: nowrap; }
footer { max-width: 72rem; margin: 2rem auto 1rem; padding: 0 1rem; color: var(--muted); font-size: .85rem; }
`

const STATE_LABELS: Record<BackendStatus['state'], string> = {
  up: 'UP',
  down: 'DOWN',
  maintenance: 'MAINTENANCE (down)',
  'not probed': 'NOT PROBED',
}

const stateBadge = (state: BackendStatus['state'] | ServiceStatus['state']) =>
  html`<span class="state state-${state.replace(' ', '-')}">${STATE_LABELS[state]}</span>`

/** `2026-11-01 12:00:00 UTC` from an ISO 8601 timestamp. */
export function utc(iso: string): string {
  return iso.replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC')
}

/** How long ago, roughly: 45 s, 12 min, 3 h, 2 d. */
export function elapsed(fromIso: string, toIso: string): string {
  const s = Math.max(0, Math.round((Date.parse(toIso) - Date.parse(fromIso)) / 1000))
  if (s < 120) return `${s} s`
  if (s < 7200) return `${Math.round(s / 60)} min`
  if (s < 172800) return `${Math.round(s / 3600)} h`
  return `${Math.round(s / 86400)} d`
}

export const percent = (x: number) => `${(x * 100).toFixed(1)}%`

const count = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`

function problem(what: string, why: string | undefined): Markup {
  return why === undefined ? html`` : html`<p class="problem" role="alert"><strong>${what}:</strong> ${why}</p>`
}

function service(s: ServiceStatus, now: string): Markup {
  return html`<li data-service="${s.service}">${s.service}: ${stateBadge(s.state)}${
    s.since === undefined ? '' : html` <small title="since ${utc(s.since)}">for ${elapsed(s.since, now)}</small>`
  }${s.detail === undefined ? '' : html` <small>(${s.detail})</small>`}</li>`
}

function backendRow(b: BackendStatus, total: number, now: string, probing: boolean): Markup {
  const share = b.accounts === null ? null : total === 0 ? 0 : b.accounts / total
  const services = b.services.length === 0 ? html`<span class="empty">${probing ? 'none configured' : 'probing off'}</span>` : html`<ul class="services">${b.services.map((s) => service(s, now))}</ul>`
  return html`<tr data-backend="${b.id}">
    <th scope="row">${b.id}<br><small>${b.address}${b.mailHosts.length ? html` · ${b.mailHosts.join(', ')}` : ''}</small></th>
    <td data-field="health" data-label="Health">${stateBadge(b.state)}</td>
    <td data-field="services" data-label="Services">${services}</td>
    <td data-field="admin-state" data-label="Admin state">${b.adminState}</td>
    <td data-field="accounts" data-label="Accounts" class="num">${b.accounts ?? 'not counted'}${b.capacity === null ? '' : html`<br><small>of ${b.capacity}</small>`}</td>
    <td data-field="share" data-label="Share">${
      share === null
        ? html`<span class="empty">-</span>`
        : html`<div class="share"><div class="bar" role="img" aria-label="${percent(share)} of all accounts"><span style="width: ${percent(share)}"></span></div><span>${percent(share)}</span></div>`
    }</td>
  </tr>`
}

function backendsSection(s: StatusSnapshot): Markup {
  const total = s.backends.reduce((n, b) => n + (b.accounts ?? 0), 0)
  const body =
    s.backends.length === 0
      ? html`<p class="empty">No backends are registered.</p>`
      : html`<div class="scroll"><table class="stack">
    <thead><tr><th scope="col">Backend</th><th scope="col">Health</th><th scope="col">Services</th><th scope="col">Admin state</th><th scope="col">Accounts</th><th scope="col">Share of accounts</th></tr></thead>
    <tbody>${s.backends.map((b) => backendRow(b, total, s.generatedAt, s.probing))}</tbody>
  </table></div>`
  return html`<section aria-labelledby="backends-title">
  <h2 id="backends-title">Backends</h2>
  ${problem('Account counts unavailable', s.problems.counts)}
  ${problem('Health records unavailable', s.problems.health)}
  ${s.probing ? '' : html`<p class="meta">Health probing is off on this instance (health.interval is 0); states other instances record still apply.</p>`}
  ${body}
  <p class="meta" id="accounts-total">${count(total, 'account')} in all.</p>
</section>`
}

function poolTable(p: PoolStatus, now: string, probing: boolean): Markup {
  const total = p.members.filter((m) => m.eligible).reduce((n, m) => n + m.weight, 0)
  return html`<h3 id="pool-${p.id}">Pool ${p.id}</h3>
  <p class="meta">Users stay on their member ${Math.round(p.pinForMs / 1000)} s after their last lookup${
    p.director ? html`; logins hand the choice to the Dovecot director (tag ${p.director.tag} at ${p.director.address})` : ''
  }.</p>
  <div class="scroll"><table class="stack" data-pool="${p.id}">
    <thead><tr><th scope="col">Member</th><th scope="col">Health</th><th scope="col">Services</th><th scope="col">Admin state</th><th scope="col">Weight</th><th scope="col">Share of new users</th><th scope="col">Pinned users</th></tr></thead>
    <tbody>${p.members.map((m) => {
      const share = m.eligible && total > 0 ? m.weight / total : 0
      const services = m.services.length === 0 ? html`<span class="empty">${probing ? 'none configured' : 'probing off'}</span>` : html`<ul class="services">${m.services.map((x) => service(x, now))}</ul>`
      return html`<tr data-member="${m.id}">
      <th scope="row">${m.id}<br><small>${m.address}</small></th>
      <td data-field="health" data-label="Health">${stateBadge(m.state)}</td>
      <td data-field="services" data-label="Services">${services}</td>
      <td data-field="admin-state" data-label="Admin state">${m.adminState}</td>
      <td data-field="weight" data-label="Weight" class="num">${m.weight}</td>
      <td data-field="share" data-label="Share">${m.eligible ? percent(share) : html`<span class="empty">none (${m.adminState === 'active' ? (m.weight === 0 ? 'weight 0' : 'down') : m.adminState})</span>`}</td>
      <td data-field="pins" data-label="Pinned users" class="num">${m.pins ?? 'not counted'}</td>
    </tr>`
    })}</tbody>
  </table></div>`
}

function poolsSection(s: StatusSnapshot): Markup {
  if (s.pools.length === 0) return html``
  return html`<section aria-labelledby="pools-title">
  <h2 id="pools-title">Pools</h2>
  ${problem('Pinned users could not be counted', s.problems.pins)}
  ${s.pools.map((p) => poolTable(p, s.generatedAt, s.probing))}
</section>`
}

function lookupsSection(s: StatusSnapshot): Markup {
  const c = s.cache
  return html`<section aria-labelledby="lookups-title">
  <h2 id="lookups-title">Lookups</h2>
  <dl class="cards">
    <div><dt>Cache hit rate</dt><dd id="cache-hit-rate">${c.hitRate === null ? 'no lookups yet' : percent(c.hitRate)}</dd>
      <small>${count(c.hits, 'hit')}, ${count(c.misses, 'miss', 'misses')}</small></div>
    <div><dt>Cache entries</dt><dd id="cache-entries">${c.entries}</dd></div>
    <div><dt>Stale answers served</dt><dd id="cache-stale">${c.staleServed}</dd></div>
    <div><dt>Accounts being moved</dt><dd id="moving">${s.moving}</dd></div>
    <div><dt>Directory</dt><dd id="directory">${s.directory.kind}</dd><small>circuit ${s.directory.circuit}</small></div>
  </dl>
</section>`
}

function auditSection(s: StatusSnapshot): Markup {
  const body =
    s.audit.length === 0
      ? html`<p class="empty">${s.problems.audit === undefined ? 'No entries yet.' : ''}</p>`
      : html`<div class="scroll"><table id="audit" class="stack">
    <thead><tr><th scope="col">Time (UTC)</th><th scope="col">Actor</th><th scope="col">Action</th><th scope="col">Subject</th></tr></thead>
    <tbody>${s.audit.map(
      (e) =>
        html`<tr data-audit-id="${e.id}"><td><time datetime="${e.at}">${utc(e.at)}</time></td><td data-label="Actor">${e.actor}</td><td data-label="Action">${e.action}</td><td data-label="Subject">${e.subjectType} <strong>${e.subject}</strong></td></tr>`,
    )}</tbody>
  </table></div>`
  return html`<section aria-labelledby="audit-title">
  <h2 id="audit-title">Recent changes</h2>
  ${problem('Audit log unavailable', s.problems.audit)}
  ${body}
</section>`
}

/** The whole page, for a viewer holding a valid token. */
export function renderStatus(s: StatusSnapshot, viewer: Principal): string {
  const down = s.backends.filter((b) => b.state === 'down' || b.state === 'maintenance').length
  const title = `mailhostd status: ${count(s.backends.length, 'backend')}, ${down} down`
  return page(
    title,
    html`<header>
  <h1>mailhostd status</h1>
  <p class="meta">Version ${s.version} · store ${s.store} · generated ${utc(s.generatedAt)} · refreshes every ${REFRESH_SECONDS} s · viewed with token ${viewer.name} (${viewer.role})</p>
</header>
<main>
${backendsSection(s)}
${poolsSection(s)}
${lookupsSection(s)}
${auditSection(s)}
</main>
<footer>Read-only. Account counts are at most ${COUNTS_MAX_AGE_MS / 1000} s old; health states are this instance's view.</footer>`,
    true,
  )
}

/** The answer to a request without a valid token: the browser shows it behind its login prompt. */
export function renderUnauthorized(reason: string): string {
  return page(
    'mailhostd status: token needed',
    html`<main>
  <h1>Token needed</h1>
  <p>${reason}</p>
  <p class="meta">Sign in with any user name and a token from <code>admin.tokens</code> (role read or admin) as the password,
  or send <code>Authorization: Bearer &lt;token&gt;</code>.</p>
</main>`,
    false,
  )
}

function page(title: string, body: Markup, refresh: boolean): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${refresh ? html`<meta http-equiv="refresh" content="${REFRESH_SECONDS}">` : ''}
<title>${title}</title>
<style>${new Markup(STYLE)}</style>
</head>
<body>
${body}
</body>
</html>
`.text
}
