// The password worker pool (src/auth/password-pool.ts) with real worker threads: the costly
// schemes are computed on them with the same results and errors as inline, the cheap ones never
// reach them; a full queue fails at once with a temporary failure; a caller that stops waiting
// gets its job dropped (a running one finishes, or its worker is replaced after a grace); a
// worker that dies costs only its own job, a temporary failure, and is replaced; workers run at
// a lower priority when asked; close() ends every thread. Each job's fate is counted.
// Ordering only, no timings: a queued job cannot finish before the one ahead of it has.

import { readdirSync, readFileSync } from 'node:fs'
import { getPriority } from 'node:os'
import t, { type Test } from 'tap'
import { PasswordPool, type PasswordJobOutcome, type PasswordOperation, type PasswordPoolOptions } from '../../src/auth/password-pool.js'
import { hashPassword, UnsupportedSchemeError, verifyPassword } from '../../src/auth/passwords.js'
import { ErrorCodes, isMailhostdError } from '../../src/errors.js'
import { createLogger, silentLogger } from '../../src/log.js'

const DYING_WORKER = new URL('../fakes/dying-password-worker.ts', import.meta.url)

function pool(t: Test, o: Partial<PasswordPoolOptions> = {}) {
  const jobs: string[] = []
  const p = new PasswordPool({ workers: 1, maxQueue: 8, logger: silentLogger, onJob: (op: PasswordOperation, outcome: PasswordJobOutcome) => jobs.push(`${op}:${outcome}`), ...o })
  t.teardown(() => p.close())
  return { p, jobs }
}

/** The code of a temporary failure the pool answered with, or what else came back. */
const codeOf = (e: unknown) => (isMailhostdError(e) && e.transient ? e.code : e)

/** A stored Argon2id value at the default cost: each check keeps a worker busy for a while. */
const slowArgon = async () => hashPassword('slow')

t.test('costly schemes go to a worker and agree with the inline functions', async (t) => {
  const { p, jobs } = pool(t, { workers: 2 })
  for (const scheme of ['ARGON2ID', 'BLF-CRYPT', 'SHA512-CRYPT'] as const) {
    const stored = await p.hash('pässwörd', scheme)
    t.match(stored, new RegExp(`^\\{${scheme}\\}`))
    t.equal(await verifyPassword(stored, 'pässwörd'), 'ok', `${scheme} made in a worker verifies inline`)
    const inline = await hashPassword('pässwörd', scheme)
    t.equal(await p.verify(inline, 'pässwörd'), 'ok', `${scheme} made inline verifies in a worker`)
    t.equal(await p.verify(inline, 'passwörd'), 'mismatch')
  }
  t.equal(await p.verify(await hashPassword('', 'ARGON2ID'), ''), 'ok', 'the empty password (the pure-JS Argon2 path)')
  t.equal(jobs.length, 10)
  t.ok(jobs.every((j) => j.endsWith(':done')), jobs.join(' '))

  jobs.length = 0
  const ssha = await p.hash('pw', 'SSHA512')
  t.equal(await p.verify(ssha, 'pw'), 'ok')
  t.equal(await p.verify('{PLAIN}pw', 'pw'), 'ok')
  t.equal(await p.hash('pw', 'PLAIN'), '{PLAIN}pw')
  await t.rejects(p.verify('no prefix', 'pw'), UnsupportedSchemeError)
  await t.rejects(p.verify('abJnggxhB/yWI', 'pw'), UnsupportedSchemeError, 'bare DES crypt is refused inline')
  t.equal(await p.verify('{PLAIN-MD5}8fe4c11451281c094a6578e6ddbf5eed', 'pw'), 'ok')
  t.same(jobs, [], 'PLAIN, salted SHA, MD5 digests and unreadable prefixes never reach a worker')
  t.equal(await p.verify('$1$ab$U8jv6p.D2WDJLEY1puNWT1', 'pass'), 'ok', 'bare MD5-crypt: on a worker')
  t.same(jobs, ['verify:done'])
})

t.test('refused stored values: each counted, logged once per scheme and fault, inline or from a worker', async (t) => {
  let text = ''
  const refused: string[] = []
  const { p } = pool(t, { logger: createLogger('info', { write: (s: string) => void (text += s) }), onSchemeRefused: (scheme) => refused.push(scheme) })
  const lines = () => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)
  // A table of DES-crypt users logging in, bare and under {CRYPT} (the latter checked on a worker).
  for (let i = 0; i < 5; i++) {
    await t.rejects(p.verify('abJnggxhB/yWI', 'pw'), { name: 'UnsupportedSchemeError', scheme: 'CRYPT' })
    await t.rejects(p.verify('{CRYPT}abJnggxhB/yWI', 'pw'), { name: 'UnsupportedSchemeError', scheme: 'CRYPT' })
  }
  await t.rejects(p.verify('{SHA512}MJ7MSJwS1utMxA9QyQLytNDtd+5RGnx6m808qG1M2G+YndNbxf9JlnDaNCVbRbDP2DDoH2Bdz33FVC6TrpzXbw==', 'pw'), UnsupportedSchemeError)
  await t.rejects(p.verify('{sha512}MJ7MSJwS1utMxA9QyQLytNDtd+5RGnx6m808qG1M2G+YndNbxf9JlnDaNCVbRbDP2DDoH2Bdz33FVC6TrpzXbw==', 'pw'), UnsupportedSchemeError)
  await t.rejects(p.verify('{FANCY-NEW}x', 'pw'), UnsupportedSchemeError)
  await t.rejects(p.verify('hunter2', 'pw'), UnsupportedSchemeError)
  await t.rejects(p.verify('{CRYPT}$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7', 'pw'), UnsupportedSchemeError)
  t.same(refused, [...Array<string>(10).fill('CRYPT'), 'SHA512', 'SHA512', 'other', 'none', 'CRYPT'], 'every refusal counted; unknown names are "other"')
  const logged = lines().map((l) => [l.scheme, l.problem, l.suppressed])
  t.same(logged, [
    ['CRYPT', 'traditional DES crypt is not supported (it reads only 8 characters of a password); rehash the password in another scheme', 0],
    ['SHA512', 'scheme not supported', 0],
    ['FANCY-NEW', 'scheme not supported', 0],
    ['(no prefix)', 'no {SCHEME} prefix', 0],
    ['CRYPT', 'crypt method not supported for this scheme', 0],
  ], 'one line per scheme and fault, not per login')
  t.ok(lines().every((l) => l.level === 'error' && l.code === 'MH_PASSWORD_SCHEME' && !JSON.stringify(l).includes('abJnggxhB')), 'errors, with the code, without the stored value')
  t.equal(await p.verify('{PLAIN}pw', 'pw'), 'ok')
  t.equal(refused.length, 15, 'checks that succeed are not refusals')
})

t.test("errors thrown in a worker reach the caller as the inline function's would", async (t) => {
  const { p } = pool(t)
  await t.rejects(p.verify('{ARGON2ID}$argon2id$v=16$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g', 'pw'), {
    name: 'UnsupportedSchemeError',
    scheme: 'ARGON2ID',
    problem: 'Argon2 version other than 19 (0x13)',
    code: ErrorCodes.PASSWORD_SCHEME,
    transient: false,
  })
  await t.rejects(p.verify('{BLF-CRYPT}$6$salt$x', 'pw'), { name: 'UnsupportedSchemeError', scheme: 'BLF-CRYPT' })
  await t.rejects(p.hash('x'.repeat(73), 'BLF-CRYPT'), { name: 'RangeError', message: /72 bytes/ })
  await t.rejects(p.hash('a\0b', 'ARGON2ID'), { name: 'RangeError', message: /NUL/ })
})

t.test('beyond the queue a job fails at once with MH_PASSWORD_BUSY, and the queue still completes', async (t) => {
  const { p, jobs } = pool(t, { workers: 1, maxQueue: 2 })
  const stored = await slowArgon()
  jobs.length = 0
  const settled: string[] = []
  const job = (i: number) =>
    p.verify(stored, `wrong-${i}`).then(
      (r) => settled.push(`${i}:${r}`),
      (e: unknown) => settled.push(`${i}:${String(codeOf(e))}`),
    )
  // One runs, two wait, two more find the queue full.
  const all = [0, 1, 2, 3, 4].map(job)
  t.equal(p.waiting, 2)
  t.equal(p.busy, 1)
  await Promise.all(all)
  t.same(settled, ['3:MH_PASSWORD_BUSY', '4:MH_PASSWORD_BUSY', '0:mismatch', '1:mismatch', '2:mismatch'], 'refused before anything queued finished; the rest in order')
  t.same(jobs.sort(), ['verify:busy', 'verify:busy', 'verify:done', 'verify:done', 'verify:done'])
  t.equal(p.waiting, 0)
})

t.test('a caller that stops waiting: a queued job is dropped unrun, a running one finishes unreported', async (t) => {
  const { p, jobs } = pool(t, { workers: 1, maxQueue: 4 })
  const stored = await slowArgon()
  jobs.length = 0
  const running = new AbortController()
  const queued = new AbortController()
  const first = p.verify(stored, 'a', running.signal)
  const second = p.verify(stored, 'b', queued.signal)
  const third = p.verify(stored, 'slow')
  queued.abort()
  t.equal(codeOf(await second.catch((e: unknown) => e)), ErrorCodes.PASSWORD_WORKER, 'the queued job is failed as abandoned')
  t.equal(p.waiting, 1, 'and left the queue')
  running.abort()
  t.equal(codeOf(await first.catch((e: unknown) => e)), ErrorCodes.PASSWORD_WORKER, 'the running one too, at once')
  t.equal(p.busy, 1, 'while its worker finishes it')
  t.equal(await third, 'ok', 'then takes the next job')
  t.same(jobs, ['verify:abandoned', 'verify:abandoned', 'verify:done'], 'the abandoned job is counted once')
  const gone = new AbortController()
  gone.abort()
  t.equal(codeOf(await p.verify(stored, 'x', gone.signal).catch((e: unknown) => e)), ErrorCodes.PASSWORD_WORKER, 'an already aborted signal is not queued')
})

t.test('a job still running long after its caller gave up costs its worker, which is replaced', async (t) => {
  const { p, jobs } = pool(t, { workers: 1, maxQueue: 4, abandonedGraceMs: 100 })
  // 1,000 passes (any salt and hash: it is never done): the better part of a minute to check;
  // the next job waits behind it unless the worker goes.
  const absurd = '{ARGON2ID}$argon2id$v=19$m=19456,t=1000,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA'
  const stored = await slowArgon()
  jobs.length = 0
  const caller = new AbortController()
  const stuck = p.verify(absurd, 'x', caller.signal)
  const next = p.verify(stored, 'slow')
  caller.abort()
  t.equal(codeOf(await stuck.catch((e: unknown) => e)), ErrorCodes.PASSWORD_WORKER)
  t.equal(await next, 'ok', 'the job behind it ran on a replacement')
  t.equal(p.threads, 1)
  t.same(jobs, ['verify:abandoned', 'verify:done'])
})

t.test('a worker that dies fails only its own job, temporarily, and is replaced', async (t) => {
  const { p, jobs } = pool(t, { workers: 1, maxQueue: 4, workerUrl: DYING_WORKER })
  const stored = await slowArgon()
  for (const death of ['die:exit', 'die:throw']) {
    jobs.length = 0
    const dying = p.verify(stored, death)
    const waiting = p.verify(stored, 'slow')
    const e = await dying.catch((err: unknown) => err)
    t.equal(codeOf(e), ErrorCodes.PASSWORD_WORKER, `${death}: a temporary failure, never a mismatch`)
    t.equal(await waiting, 'ok', `${death}: the job queued behind it is computed by the replacement`)
    t.equal(p.threads, 1, `${death}: one worker again`)
    t.same(jobs, ['verify:crashed', 'verify:done'])
  }
  t.equal(await p.hash('after', 'BLF-CRYPT').then((s) => verifyPassword(s, 'after')), 'ok', 'hashes too')
})

t.test('workers that keep dying are replaced after a growing pause, without spinning', async (t) => {
  const { p, jobs } = pool(t, { workers: 1, maxQueue: 4, workerUrl: DYING_WORKER })
  const stored = await slowArgon()
  for (let i = 0; i < 3; i++) t.equal(codeOf(await p.verify(stored, 'die:exit').catch((e: unknown) => e)), ErrorCodes.PASSWORD_WORKER)
  t.equal(p.threads, 0, 'the third death in a row waits before its replacement')
  t.equal(await p.verify(stored, 'slow'), 'ok', 'a job meanwhile waits for it, then runs')
  t.same(jobs, ['verify:crashed', 'verify:crashed', 'verify:crashed', 'verify:done'])
})

t.test('workers run `niceness` lower than the daemon (Linux: per-thread nice values)', async (t) => {
  const niceOf = (tid: string) => Number(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[16])
  const threads = () => readdirSync('/proc/self/task').map(niceOf)
  const nicer = Math.min(19, getPriority() + 5)
  const before = threads().filter((n) => n === nicer).length
  const { p } = pool(t, { workers: 2, niceness: 5 })
  // Two jobs at once: both workers have started (and set their priority before taking a job).
  await Promise.all([p.hash('a', 'BLF-CRYPT'), p.hash('b', 'BLF-CRYPT')])
  t.equal(threads().filter((n) => n === nicer).length - before, 2, 'both worker threads')
  t.equal(getPriority(), nicer - 5, "the daemon's own thread keeps its priority")
})

t.test('close() fails what waits or runs, ends every thread, refuses new jobs', async (t) => {
  const { p, jobs } = pool(t, { workers: 2, maxQueue: 4 })
  const stored = await slowArgon()
  jobs.length = 0
  const pending = [0, 1, 2, 3].map((i) => p.verify(stored, `x${i}`).catch((e: unknown) => codeOf(e)))
  t.equal(p.threads, 2)
  await p.close()
  t.same(await Promise.all(pending), Array(4).fill(ErrorCodes.PASSWORD_WORKER))
  t.equal(p.threads, 0)
  t.equal(codeOf(await p.verify(stored, 'x').catch((e: unknown) => e)), ErrorCodes.PASSWORD_WORKER)
  t.same(jobs, Array(5).fill('verify:closed'))
  await p.close()
  t.throws(() => new PasswordPool({ workers: 0, maxQueue: 1, logger: silentLogger }), RangeError)
})
