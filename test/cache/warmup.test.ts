// warmUp() with in-memory fakes of our own interfaces (an address source, a resolver): what it
// counts, what it logs (progress every tenth, one final line, failures summed up once), and that
// a listing that breaks off, failing resolutions and a shutdown are never fatal.

import t from 'tap'
import { warmUp } from '../../src/cache/warmup.js'
import type { MailboxAddresses } from '../../src/directory/mailbox-addresses.js'
import { DirectoryError, ErrorCodes } from '../../src/errors.js'
import { createLogger } from '../../src/log.js'
import type { KeyResolution } from '../../src/resolve/lookup-service.js'

function source(pages: string[][], failAfter?: number): MailboxAddresses & { closed: boolean } {
  return {
    closed: false,
    async each(onPage, signal) {
      for (const [i, page] of pages.entries()) {
        if (signal.aborted) return
        if (failAfter !== undefined && i >= failAfter) throw new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, 'size limit exceeded')
        onPage(page)
        await new Promise((r) => setImmediate(r))
      }
    },
    async close() {
      this.closed = true
    },
  }
}

function captured() {
  let text = ''
  const logger = createLogger('debug', { write: (s: string) => void (text += s) })
  return { logger, lines: () => text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>) }
}

const resolved = (address: string): KeyResolution => ({
  kind: 'resolved',
  address: { ok: true, address, local: address.split('@')[0]!, domain: 'example.org' },
  resolution: { kind: 'none' },
  layer: 'directory',
})

t.test('loads every distinct address, with progress every tenth and a final line', async (t) => {
  const addresses = Array.from({ length: 200 }, (_, i) => `user${i}@example.org`)
  const pages = [addresses.slice(0, 120), [...addresses.slice(120), 'USER0@example.org', ' ', 'x@unserved.example']]
  const asked: string[] = []
  let inFlight = 0
  let most = 0
  const log = captured()
  const r = await warmUp({
    source: source(pages),
    resolve: async (key) => {
      asked.push(key)
      most = Math.max(most, ++inFlight)
      await new Promise((res) => setImmediate(res))
      inFlight--
      return key.endsWith('@unserved.example') ? { kind: 'rules', reason: 'domain not served' } : resolved(key)
    },
    concurrency: 4,
    logger: log.logger,
    signal: new AbortController().signal,
  })
  t.match(r, { total: 201, loaded: 200, skipped: 1, failed: 0, aborted: false })
  t.equal(asked.length, 201, 'each address once (USER0 is user0; blank skipped)')
  t.equal(most, 4, 'bounded concurrency')
  const lines = log.lines().filter((l) => l.component === 'warmup')
  t.match(lines[0], { msg: 'cache warm-up: loading every mailbox address into the cache', total: 201 })
  t.same(lines.filter((l) => /%$/.test(String(l.msg))).map((l) => l.msg), ['10%', '20%', '30%', '40%', '50%', '60%', '70%', '80%', '90%'].map((p) => `cache warm-up: ${p}`))
  t.match(lines.at(-1), { level: 'info', msg: 'cache warm-up: done', total: 201, loaded: 200, skipped: 1, failed: 0, perSecond: Number })
})

t.test('failures and a listing cut short are counted and logged once, never thrown', async (t) => {
  const log = captured()
  const r = await warmUp({
    source: source([['a@example.org', 'b@example.org'], ['c@example.org'], ['never@example.org']], 2),
    resolve: async (key) => (key === 'b@example.org' ? resolved(key) : { kind: 'failed', reason: 'MH_DIRECTORY_UNAVAILABLE down' }),
    concurrency: 8,
    logger: log.logger,
    signal: new AbortController().signal,
  })
  t.match(r, { total: 3, loaded: 1, failed: 2, listingError: /size limit exceeded/ })
  const warns = log.lines().filter((l) => l.level === 'warn')
  t.equal(warns.length, 2, 'one line for the listing, one summing up the failures')
  t.match(warns[0], { msg: /reading the mailbox addresses stopped early/, read: 3 })
  t.match(warns[1], { msg: /done, with failures/, failed: 2, firstFailure: 'MH_DIRECTORY_UNAVAILABLE down' })
})

t.test('a shutdown stops it', async (t) => {
  const stop = new AbortController()
  const log = captured()
  let asked = 0
  const r = await warmUp({
    source: source([Array.from({ length: 50 }, (_, i) => `u${i}@example.org`)]),
    resolve: async (key) => {
      if (++asked === 5) stop.abort()
      return resolved(key)
    },
    concurrency: 1,
    logger: log.logger,
    signal: stop.signal,
  })
  t.match(r, { aborted: true, loaded: 5 })
  t.match(log.lines().at(-1), { msg: 'cache warm-up: stopped (shutting down)', done: 5 })
  const before = new AbortController()
  before.abort()
  t.match(await warmUp({ source: source([['a@example.org']]), resolve: async (k) => resolved(k), concurrency: 1, logger: log.logger, signal: before.signal }), { total: 0, aborted: true })
})
