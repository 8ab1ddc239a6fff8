// Acceptance (issue 6): the status page renders in headless Chromium (Debian's chromium package,
// driven by playwright-core) with the demo data and shows both backends. The daemon runs
// in-process (PGlite, demo data, demo tokens); the browser logs in the way an operator's would,
// through its HTTP Basic prompt with the read token as the password.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import t from 'tap'
import { recordAudit } from '../../src/admin/audit.js'
import { lookup, startAdminDaemon } from '../admin/daemon.js'
import { READ_TOKEN } from '../harness/admin-api.js'

const CHROMIUM = '/usr/bin/chromium'
/**
 * Without the background-networking flags Chromium keeps calling Google's hosts, which this
 * closed network refuses. playwright-core starts it headless, with a fresh empty profile
 * directory of its own that it deletes on close.
 */
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]
const VIEWPORT = { width: 1280, height: 900 }

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

/** Width and height from a PNG's IHDR chunk, which must come first. */
function pngSize(png: Buffer): { width: number; height: number } {
  if (!png.subarray(0, 8).equals(PNG_SIGNATURE)) throw new Error('not a PNG: wrong signature')
  if (png.toString('latin1', 12, 16) !== 'IHDR') throw new Error('not a PNG: no IHDR first')
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) }
}

t.test('the status page in headless Chromium', async (t) => {
  t.ok(existsSync(CHROMIUM), `${CHROMIUM} exists (Debian package chromium: node scripts/install-peers.mjs as root)`)
  const d = await startAdminDaemon(t)
  const url = `http://127.0.0.1:${d.port}/`

  // State for the page to show: lookups (1 miss, 3 hits), mx2 draining, a hostile audit subject.
  for (let i = 0; i < 4; i++) t.equal((await lookup(d.api, 'transport', 'alice@example.org')).outcome, 'found')
  t.equal((await d.api.patch('/v1/backends/mx2', { adminState: 'drain' })).status, 200)
  await recordAudit(d.daemon.store, { actor: 'import', action: 'create', subjectType: 'account', subject: '<script>document.title="owned"</script>' })

  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, timeout: 60_000 })
  t.teardown(() => browser.close())
  const dir = mkdtempSync(join(tmpdir(), 'mh-status-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))

  t.test('without credentials, or with a wrong token, the browser gets 401', async (t) => {
    // No credentials: the challenge reaches the browser, which has nothing to answer it with
    // (a person would see the login prompt here), so the navigation fails.
    const anonymous = await browser.newContext()
    t.teardown(() => anonymous.close())
    const page = await anonymous.newPage()
    const challenge = page.waitForResponse(url)
    const refused = page.goto(url).then(
      () => 'loaded',
      (e: Error) => e.message,
    )
    const res = await challenge
    t.equal(res.status(), 401)
    t.equal(await res.headerValue('www-authenticate'), 'Basic realm="mailhostd"')
    t.match(await refused, /ERR_INVALID_AUTH_CREDENTIALS/)

    // A wrong token: the browser answers the challenge and is shown the 401 page.
    const wrong = await browser.newContext({ httpCredentials: { username: 'ops', password: 'not-a-token' } })
    t.teardown(() => wrong.close())
    const again = await wrong.newPage()
    const denied = await again.goto(url)
    t.equal(denied?.status(), 401)
    t.equal(await again.locator('h1').innerText(), 'Token needed')
    t.match(await again.locator('main').innerText(), /That token is not valid\./)
    t.equal(await again.locator('tr[data-backend]').count(), 0, 'nothing of the cluster')
  })

  t.test('with the read token it shows both backends, the hit rate and the audit log', async (t) => {
    const context = await browser.newContext({ httpCredentials: { username: 'ops', password: READ_TOKEN }, viewport: VIEWPORT })
    t.teardown(() => context.close())
    const page: Page = await context.newPage()
    const res = await page.goto(url)
    t.equal(res?.status(), 200)
    t.equal(await page.title(), 'mailhostd status: 2 backends, 0 down')

    const field = (backend: string, name: string) => page.locator(`tr[data-backend="${backend}"] [data-field="${name}"]`).innerText()
    const rows = await page.locator('tr[data-backend]').all()
    t.same(await Promise.all(rows.map((r) => r.getAttribute('data-backend'))), ['mx1', 'mx2'])
    t.equal(await field('mx1', 'accounts'), '2')
    t.equal(await field('mx2', 'accounts'), '1')
    t.equal(await field('mx1', 'admin-state'), 'active')
    t.equal(await field('mx2', 'admin-state'), 'drain')
    t.equal(await field('mx1', 'health'), 'NOT PROBED', 'no checks have run')
    t.equal(await field('mx1', 'share'), '66.7%')
    t.equal(await field('mx2', 'share'), '33.3%')
    t.match(await page.locator('tr[data-backend="mx1"] th').innerText(), /10\.0\.0\.11/)
    // The bars are drawn: mx1's fill is twice mx2's.
    const fill = async (backend: string) => (await page.locator(`tr[data-backend="${backend}"] .bar > span`).boundingBox())!.width
    const [one, two] = [await fill('mx1'), await fill('mx2')]
    t.ok(two > 10, `mx2's bar is visible (${two}px)`)
    t.ok(Math.abs(one / two - 2) < 0.1, `mx1's bar is twice mx2's (${one}px, ${two}px)`)

    t.equal(await page.locator('#cache-hit-rate').innerText(), '75.0%')
    t.equal(await page.locator('#moving').innerText(), '0')

    const audit = await page.locator('#audit tbody tr').allInnerTexts()
    t.ok(audit.length >= 7, `${audit.length} audit entries`)
    t.match(audit[0], /import\s+create\s+account <script>document\.title="owned"<\/script>/, 'the hostile subject is text')
    t.match(audit[1], /demo-admin\s+update\s+backend mx2/)
    t.match(audit.at(-1), /config\s+create\s+backend mx1/)
    t.equal(await page.locator('script').count(), 0, 'no script element made it into the page')

    // Not blank: a screenshot of the page compresses far worse than one of an empty page.
    const shot = join(dir, 'status.png')
    await page.screenshot({ path: shot, fullPage: true })
    const png = readFileSync(shot)
    const size = pngSize(png)
    t.equal(size.width, VIEWPORT.width)
    t.ok(size.height >= VIEWPORT.height && size.height < 10_000, `height ${size.height}`)
    const blank = await context.newPage()
    await blank.setContent('<!doctype html><title>blank</title>')
    const empty = await blank.screenshot({ fullPage: true })
    t.same(pngSize(empty), { width: VIEWPORT.width, height: VIEWPORT.height })
    t.ok(png.length > 5 * empty.length, `the page's screenshot (${png.length} bytes) holds far more than a blank one (${empty.length} bytes)`)

    // Narrow screens: the page does not scroll sideways (wide tables scroll in their own box).
    await page.setViewportSize({ width: 375, height: 700 })
    // A string: the test compiles without the DOM's types.
    const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth')
    t.equal(overflow, 0, 'no horizontal scroll on a 375 px wide screen')
  })
})
