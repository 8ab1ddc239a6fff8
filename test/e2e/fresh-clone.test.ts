// Acceptance: from a fresh clone, `npm ci && npm start` serves the demo directory, and
// `postmap -q alice@example.org socketmap:inet:127.0.0.1:10040:transport` answers mx1's route.
// It clones the committed HEAD (what a user gets), so it also catches files missing from git.
// It needs the default ports (10040-10042, 10090) free on this machine.

import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { postmapQuery, ROOT } from '../harness/mailhostd.js'
import { mustRun, track, untrack, isAlive } from '../harness/process.js'
import { waitForPort } from '../harness/ports.js'
import { DEMO_ROUTES } from './demo-table.js'

t.test('npm ci && npm start in a fresh clone serves the demo', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailhostd-clone-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await mustRun('git', ['clone', '--quiet', ROOT, dir])
  await mustRun('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: dir, timeoutMs: 180_000 })

  // npm runs the daemon in a child process: start it in its own process group so the whole
  // group (npm, sh, node) can be stopped by our PID.
  const child = spawn('npm', ['start'], { cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  const pid = child.pid!
  track(pid)
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (out += d.toString()))
  t.teardown(async () => {
    try {
      process.kill(-pid, 'SIGTERM')
    } catch {
      /* gone */
    }
    for (let i = 0; i < 100 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 50))
    untrack(pid)
  })

  await waitForPort(10040, '127.0.0.1', 120_000).catch((e: Error) => {
    throw new Error(`${e.message}\n${out}`)
  })
  const r = await postmapQuery('socketmap:inet:127.0.0.1:10040:transport', 'alice@example.org')
  t.same({ code: r.code, out: r.stdout.trim() }, { code: 0, out: DEMO_ROUTES.mx1 }, 'alice routes to mx1')
  t.match(out, /serving the demo directory/)
})
