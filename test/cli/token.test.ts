// `mailhostctl token new`: the token's form, its SHA-256, and a config line that YAML reads back
// as exactly the name, role and hash (whatever the name looks like to YAML).

import { createHash } from 'node:crypto'
import t from 'tap'
import { parse } from 'yaml'
import { configLine, newToken, yamlScalar } from '../../src/cli/commands/token.js'
import { main } from '../../src/cli/main.js'
import type { Io } from '../../src/cli/io.js'

t.test('a token: mh_ and 32 random bytes base64url; the hash is of the token string', async (t) => {
  const fixed = newToken('ops', 'admin', (n) => Buffer.alloc(n, 0xff))
  t.equal(fixed.token, `mh_${'_'.repeat(42)}8`, '256 bits in 43 characters')
  t.equal(fixed.sha256, createHash('sha256').update(fixed.token).digest('hex'))
  t.same(Object.keys(fixed), ['token', 'name', 'role', 'sha256'])
  const a = newToken('ops', 'read')
  t.match(a.token, /^mh_[A-Za-z0-9_-]{43}$/)
  t.not(a.token, newToken('ops', 'read').token)
})

t.test('the config line is the YAML admin.tokens entry, read back unchanged', async (t) => {
  const names = ['ops', 'ops-team', 'a.b_c', '@ops', 'ops@example.org', '123', '0x1f', '1e3', 'true', 'No', 'null', 'y', '-', '.inf', 'NaN', '_x', 'ops.', 'a-1']
  for (const name of names) {
    const entry = { token: 'mh_x', name, role: 'admin' as const, sha256: 'ab'.repeat(32) }
    const line = configLine(entry)
    t.same(parse(line), { name, role: 'admin', sha256: entry.sha256 }, line)
  }
  t.equal(configLine({ token: 'mh_x', name: 'ops', role: 'read', sha256: 'f00' }), '{name: ops, role: read, sha256: "f00"}')
  t.same(parse(configLine({ token: 'mh_x', name: 'ops', role: 'read', sha256: '1'.repeat(64) })), { name: 'ops', role: 'read', sha256: '1'.repeat(64) }, 'an all-digit hash stays a string')
  t.equal(yamlScalar('ops'), 'ops')
  t.equal(yamlScalar('123'), '"123"')
  t.equal(yamlScalar('yes'), '"yes"')
})

t.test('token new prints the token and the line, or JSON; no daemon needed', async (t) => {
  const run = async (argv: string[]) => {
    const out = { stdout: '', stderr: '' }
    const io: Io = { out: (s) => (out.stdout += s), err: (s) => (out.stderr += s), stdin: () => Promise.resolve(''), env: {} }
    const code = await main(argv, io, () => {
      throw new Error('token new must not connect')
    })
    return { code, ...out }
  }
  const human = await run(['token', 'new', 'ops', '--role', 'admin'])
  t.equal(human.code, 0)
  t.match(human.stdout, /^token: {2}mh_[A-Za-z0-9_-]{43}\nconfig: \{name: ops, role: admin, sha256: "[0-9a-f]{64}"\}\n$/)
  t.match(human.stderr, /shown only now/)
  const json = await run(['--json', 'token', 'new', '123'])
  const parsed = JSON.parse(json.stdout) as { token: string; name: string; role: string; sha256: string }
  t.same([parsed.name, parsed.role, json.stderr], ['123', 'read', ''])
  t.equal(parsed.sha256, createHash('sha256').update(parsed.token).digest('hex'))
  for (const bad of [['new'], ['new', 'a b'], ['new', 'x'.repeat(65)], ['new', 'ops', '--role', 'superuser'], ['old', 'ops'], []]) {
    t.equal((await run(['token', ...bad])).code, 64, bad.join(' '))
  }
})
