// The dict listener with an in-memory DictService: the silent handshake, pipelined lookups
// answered in order, bad input closed without a reply, refused commands, and the socket file's
// life: stale files replaced, anything else refused, mode applied, removed on close.

import t from 'tap'
import { lstat, mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { createDictServer, DICT_INTERNAL_FAILURE } from '../../src/server/dict-server.js'
import { run } from '../harness/process.js'
import {
  AWKWARD_VALUE,
  FakeDict,
  HELLO,
  connectUnix,
  foundFor,
  lookup,
  readReply,
  startDict,
  tempDir,
} from './dict-peer.js'
import { capturingLogger, defaultLimits, until } from './flavors.js'

/** Generous bound for "answered promptly" while another connection misbehaves. */
const PROMPT_MS = 2000

t.test('the handshake gets no reply; lookups get O, N or F with every byte intact', async (t) => {
  const { path, dict } = await startDict(t)
  const c = await connectUnix(t, path)
  c.write(HELLO)
  t.notOk(await c.closesWithin(300), 'the connection stays open')
  t.equal(c.buffered.length, 0, 'not a byte for the handshake')

  c.write(lookup('shared/passdb/alice@example.org'))
  t.same(await readReply(c), foundFor('shared/passdb/alice@example.org'))
  c.write(lookup('shared/passdb/awkward\t\n\x01ü@example.org', 'awkward\tuser'))
  t.same(await readReply(c), { code: 'O', fields: [AWKWARD_VALUE] }, 'TAB, LF, CR, \\x01 and UTF-8 travel escaped')
  c.write(lookup('shared/passdb/ghost@example.org'))
  t.same(await readReply(c), { code: 'N', fields: [''] })
  c.write(lookup('shared/userdb/down@example.org'))
  t.same(await readReply(c), { code: 'F', fields: ['directory down:\tLDAP timeout\nafter 3 s'] })
  c.write('Lshared/passdb/no-user@example.org\n')
  await readReply(c)

  t.same(dict.calls, [
    { key: 'shared/passdb/alice@example.org', user: 'alice@example.org' },
    { key: 'shared/passdb/awkward\t\n\x01ü@example.org', user: 'awkward\tuser' },
    { key: 'shared/passdb/ghost@example.org', user: 'ghost@example.org' },
    { key: 'shared/userdb/down@example.org', user: 'down@example.org' },
    { key: 'shared/passdb/no-user@example.org', user: '' },
  ], 'keys and users reach the service unescaped; a missing user is empty')
  t.equal(c.buffered.length, 0, 'one line per lookup, nothing more')
})

t.test('a pipelined burst is answered in order, one line each', async (t) => {
  const { path } = await startDict(t)
  const c = await connectUnix(t, path)
  const keys = Array.from({ length: 300 }, (_, i) => (i % 7 === 3 ? `shared/passdb/ghost${i}@x` : `shared/passdb/sleep${i}@x`))
  // Handshake and every lookup in one write, as a busy auth-worker's pipeline can arrive.
  c.write(HELLO + keys.map((k) => lookup(k)).join(''))
  const replies = []
  for (let i = 0; i < keys.length; i++) replies.push(await readReply(c))
  t.same(replies, keys.map((k) => (k.includes('ghost') ? { code: 'N', fields: [''] } : foundFor(k))))
  t.notOk(await c.closesWithin(200), 'still open')
  t.equal(c.buffered.length, 0, 'no extra bytes')
})

t.test('a slow lookup on one connection does not delay another', async (t) => {
  const { path, dict } = await startDict(t)
  const slow = await connectUnix(t, path)
  const fast = await connectUnix(t, path)
  dict.hold('shared/passdb/slow@x')
  slow.write(HELLO + lookup('shared/passdb/slow@x') + lookup('shared/passdb/after-slow@x'))
  await until(() => dict.waiting === 1, 5000, 'the slow lookup to start')
  fast.write(HELLO + lookup('shared/passdb/fast@x'))
  t.same(await readReply(fast, PROMPT_MS), foundFor('shared/passdb/fast@x'))
  t.equal(slow.buffered.length, 0, 'the slow one still waits')
  dict.release()
  t.same(await readReply(slow), foundFor('shared/passdb/slow@x'))
  t.same(await readReply(slow), foundFor('shared/passdb/after-slow@x'), 'and the lookup queued behind it comes second')
})

const badInputs: [string, string | Buffer][] = [
  ['garbage', 'GET / HTTP/1.1\r\nHost: dict\r\n\r\n'],
  ['a lookup before the handshake', lookup('shared/passdb/alice@x')],
  ['a broken handshake', 'H3\t2\n'],
  ['an empty line', `${HELLO}\n`],
  ['an unknown command', `${HELLO}X1\n`],
  ['a second handshake', HELLO + HELLO],
  ['L with nothing after it', `${HELLO}L\n`],
  ['a 1 MiB line', `${HELLO}L${'a'.repeat(1 << 20)}\tu\n`],
  ['1 MiB without a line end', Buffer.alloc(1 << 20, 0x4c)],
]
for (const [what, bytes] of badInputs) {
  t.test(`${what}: closed without a reply, other connections unaffected`, async (t) => {
    const { path, dict } = await startDict(t)
    const good = await connectUnix(t, path)
    const bad = await connectUnix(t, path)
    good.write(HELLO)
    bad.write(bytes)
    good.write(lookup('shared/passdb/alice@x'))
    t.same(await readReply(good, PROMPT_MS), foundFor('shared/passdb/alice@x'))
    t.ok(await bad.closesWithin(PROMPT_MS), 'bad connection closed')
    t.equal(bad.buffered.length, 0, 'not a byte sent to it')
    good.write(lookup('shared/passdb/bob@x'))
    t.same(await readReply(good, PROMPT_MS), foundFor('shared/passdb/bob@x'))
    t.equal(dict.calls.length, 2, 'the bad connection never reached the service')
  })
}

t.test('lookups before a bad line are answered first', async (t) => {
  const { path } = await startDict(t)
  const c = await connectUnix(t, path)
  c.write(HELLO + lookup('shared/passdb/sleep1@x') + lookup('shared/passdb/ghost@x') + 'junk\n' + lookup('shared/passdb/alice@x'))
  t.same(await readReply(c), foundFor('shared/passdb/sleep1@x'))
  t.same(await readReply(c), { code: 'N', fields: [''] })
  t.ok(await c.closesWithin(PROMPT_MS))
  t.equal(c.buffered.length, 0, 'nothing after the bad line')
})

t.test('a Dovecot 2.4 client (protocol 4) is closed with one warning naming both versions', async (t) => {
  const { path, logLines, dict } = await startDict(t)
  const c = await connectUnix(t, path)
  c.write('H4\t0\t0\t\tmailhost\n' + lookup('shared/passdb/alice@x'))
  t.ok(await c.closesWithin(PROMPT_MS))
  t.equal(c.buffered.length, 0)
  t.equal(dict.calls.length, 0)
  const warnings = logLines().filter((l) => l.level === 'warn')
  t.equal(warnings.length, 1)
  t.match(warnings[0], { listener: 'dict', msg: 'dict client speaks protocol 4; mailhostd speaks 3 (Dovecot 2.3)', major: 4 })
})

t.test('iterate and write commands are refused in step with the client, with one warning', async (t) => {
  const { path, logLines, dict } = await startDict(t)
  const c = await connectUnix(t, path)
  // A transaction: B, S, U, A, T and R expect no reply; only C (and the old D) does.
  c.write(HELLO + 'B1\tu\nS1\tk\tv\nU1\tk\nA1\tk\t1\nT1\t0\t0\nC1\n' + 'B2\tu\nR2\n' + 'I0\t0\tshared/x\tu\n' + 'D3\n' + lookup('shared/passdb/alice@x'))
  t.same(await readReply(c), { code: 'F', fields: ['', 'mailhostd: this dict only answers lookups'] }, 'C: id field, then the error')
  t.same(await readReply(c), { code: 'F', fields: ['mailhostd: this dict only answers lookups'] }, 'I: the error')
  t.same(await readReply(c), { code: 'F', fields: ['', 'mailhostd: this dict only answers lookups'] }, 'D: like C')
  t.same(await readReply(c), foundFor('shared/passdb/alice@x'), 'the lookup behind them gets its own reply')
  t.notOk(await c.closesWithin(200), 'still open')
  t.equal(c.buffered.length, 0)
  t.equal(dict.calls.length, 1)
  const warnings = logLines().filter((l) => l.level === 'warn')
  t.equal(warnings.length, 1, 'one warning per connection')
  t.match(warnings[0], { listener: 'dict', command: 'B' })
})

t.test('a key that is not valid UTF-8 is not found, without asking the service', async (t) => {
  const { path, dict } = await startDict(t)
  const c = await connectUnix(t, path)
  c.write(Buffer.concat([Buffer.from(`${HELLO}Lshared/passdb/a`), Buffer.from([0xff, 0xfe]), Buffer.from('@x\tu\n')]))
  t.same(await readReply(c), { code: 'N', fields: [''] })
  c.write(Buffer.concat([Buffer.from('Lshared/passdb/alice@x\t'), Buffer.from([0xc3]), Buffer.from('\n')]))
  t.same(await readReply(c), foundFor('shared/passdb/alice@x', ''), 'an invalid user is passed as empty')
  t.same(dict.calls, [{ key: 'shared/passdb/alice@x', user: '' }])
})

t.test('a rejecting service is answered with a generic F, logged, and the connection stays usable', async (t) => {
  const { path, logLines } = await startDict(t)
  const c = await connectUnix(t, path)
  c.write(HELLO + lookup('shared/passdb/boom@x'))
  t.same(await readReply(c), { code: 'F', fields: [DICT_INTERNAL_FAILURE] })
  c.write(lookup('shared/passdb/alice@x'))
  t.same(await readReply(c), foundFor('shared/passdb/alice@x'))
  const errors = logLines().filter((l) => l.level === 'error')
  t.equal(errors.length, 1)
  t.match(errors[0], { listener: 'dict', msg: 'dict lookup failed', err: 'bug in the dict service' })
})

t.test('maxRequestBytes is exact on the wire', async (t) => {
  const line = lookup('shared/passdb/alice@x')
  const { path } = await startDict(t, { limits: { maxRequestBytes: Buffer.byteLength(line) } })
  const fits = await connectUnix(t, path)
  const over = await connectUnix(t, path)
  fits.write(HELLO + line)
  t.same(await readReply(fits), foundFor('shared/passdb/alice@x'))
  over.write(HELLO + lookup('shared/passdb/alice@xy'))
  t.ok(await over.closesWithin(PROMPT_MS), 'one byte more: closed')
  t.equal(over.buffered.length, 0, 'without a reply')
})

t.test('the last lookup before the client shuts down its side is still answered', async (t) => {
  const { path } = await startDict(t)
  const c = await connectUnix(t, path)
  c.socket.end(HELLO + lookup('shared/passdb/alice@x'))
  t.same(await readReply(c), foundFor('shared/passdb/alice@x'))
  t.ok(await c.closesWithin(PROMPT_MS), 'then the server closes')
})

t.test('the socket file: mode applied, reported by listen(), removed on close, bound again on restart', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'dict.sock')
  for (const mode of [0o600, 0o660, 0o666]) {
    const { logger, lines } = capturingLogger()
    const server = createDictServer({ path, mode, logger, limits: defaultLimits, dict: new FakeDict() })
    t.same(await server.listen(), { host: 'unix', port: 0, path })
    const st = await lstat(path)
    t.ok(st.isSocket(), 'a socket')
    t.equal(st.mode & 0o777, mode, `mode 0${mode.toString(8)}`)
    t.match(lines().find((l) => l.msg === 'listening'), { listener: 'dict', path, mode: `0${mode.toString(8)}` })
    await server.close(0)
    await t.rejects(lstat(path), { code: 'ENOENT' }, 'removed on close')
  }
})

t.test('close() waits for a lookup in flight, then removes the socket', async (t) => {
  const { server, path, dict } = await startDict(t)
  const c = await connectUnix(t, path)
  dict.hold('shared/passdb/slow@x')
  c.write(HELLO + lookup('shared/passdb/slow@x'))
  await until(() => dict.waiting === 1, 5000, 'the lookup to start')
  const closed = server.close(5000)
  setTimeout(() => dict.release(), 100)
  t.same(await readReply(c), foundFor('shared/passdb/slow@x'), 'answered before closing')
  await closed
  await t.rejects(lstat(path), { code: 'ENOENT' })
})

t.test('a stale socket left by a killed process is replaced', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'dict.sock')
  // process.exit skips libuv's cleanup, so the socket file stays behind with nobody listening.
  const r = await run(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.exit(0))`])
  t.equal(r.code, 0, r.stderr)
  t.ok((await lstat(path)).isSocket(), 'a stale socket is there')
  const { dict } = await startDict(t, { path })
  const c = await connectUnix(t, path)
  c.write(HELLO + lookup('shared/passdb/alice@x'))
  t.same(await readReply(c), foundFor('shared/passdb/alice@x'), 'our server answers on it')
  t.equal(dict.calls.length, 1)
})

t.test('a socket someone still listens on is not taken over', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'dict.sock')
  const other = createServer((s) => {
    s.on('error', () => undefined) // the probe connects and leaves at once
    s.end('other\n')
  })
  await new Promise<void>((resolve) => other.listen(path, resolve))
  t.teardown(() => new Promise<void>((resolve) => other.close(() => resolve())))
  const { logger } = capturingLogger()
  const server = createDictServer({ path, mode: 0o660, logger, limits: defaultLimits, dict: new FakeDict() })
  await t.rejects(server.listen(), { code: 'EADDRINUSE', message: `${path} may be in use (another process accepts connections on it); refusing to replace it` })
  await server.close(0)
  const c = await connectUnix(t, path)
  t.equal(await c.readLine(), 'other', 'the other server still owns it')
})

t.test('a path that is not a socket is never removed: listen() refuses', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'dict.sock')
  await writeFile(file, 'precious\n')
  const sub = join(dir, 'a-dir')
  await mkdir(sub)
  for (const path of [file, sub]) {
    const { logger } = capturingLogger()
    const server = createDictServer({ path, mode: 0o660, logger, limits: defaultLimits, dict: new FakeDict() })
    await t.rejects(server.listen(), { message: `${path} exists and is not a socket; refusing to replace it` })
    await server.close(0)
  }
  t.equal(await readFile(file, 'utf8'), 'precious\n', 'the file is untouched')
  t.ok((await stat(sub)).isDirectory(), 'the directory is untouched')
})

t.test('paths Dovecot or the kernel cannot use are refused with a clear error', async (t) => {
  const { logger } = capturingLogger()
  const options = { mode: 0o660, logger, limits: defaultLimits, dict: new FakeDict() }
  t.throws(() => createDictServer({ ...options, path: '/run/mailhostd:dict.sock' }), /contains ":"/)
  const dir = await tempDir(t)
  const long = join(dir, 'x'.repeat(120))
  const server = createDictServer({ ...options, path: long })
  await t.rejects(server.listen(), { message: `unix socket path ${long} is longer than 107 bytes` })
  await server.close(0)
  const missing = createDictServer({ ...options, path: join(dir, 'no-such-dir', 'dict.sock') })
  await t.rejects(missing.listen(), { code: 'ENOENT', path: join(dir, 'no-such-dir') }, 'a missing directory is named as such')
  await missing.close(0)
  const file = join(dir, 'file')
  await writeFile(file, '')
  const underFile = createDictServer({ ...options, path: join(file, 'dict.sock') })
  await t.rejects(underFile.listen(), { code: 'ENOTDIR' }, 'a path through a regular file')
  await underFile.close(0)
  for (const mode of [0o4660, -1, 0.5]) {
    const badMode = createDictServer({ ...options, mode, path: join(dir, 'dict.sock') })
    await t.rejects(badMode.listen(), { message: `unix socket mode ${mode} is not within 0 to 0o777` })
    await badMode.close(0)
  }
  await t.rejects(lstat(join(dir, 'dict.sock')), { code: 'ENOENT' }, 'nothing was bound')
})
