import t from 'tap'
import { CircuitBreakerDirectory } from '../../src/directory/circuit-breaker.js'
import { DirectoryDataError, ErrorCodes } from '../../src/errors.js'
import { silentLogger } from '../../src/log.js'
import { demoDirectory } from '../fakes/memory-directory.js'

function setup() {
  let now = 0
  const inner = demoDirectory()
  const cb = new CircuitBreakerDirectory(inner, { failureThreshold: 3, openForMs: 5000, now: () => now }, silentLogger)
  return { inner, cb, advance: (ms: number) => (now += ms) }
}

t.test('opens after consecutive failures, fails fast, recovers through one trial', async (t) => {
  const { inner, cb, advance } = setup()
  inner.down()
  for (let i = 0; i < 3; i++) await t.rejects(cb.findByAddress('alice@example.org'), { code: ErrorCodes.DIRECTORY_UNAVAILABLE })
  t.equal(cb.state, 'open')
  t.equal(cb.accepting, false, 'open: refusing')
  const before = inner.queries.length
  await t.rejects(cb.findByAddress('alice@example.org'), { code: ErrorCodes.DIRECTORY_CIRCUIT_OPEN })
  t.equal(inner.queries.length, before, 'open circuit does not call the directory')
  advance(5000)
  await t.rejects(cb.findByAddress('alice@example.org'), { code: ErrorCodes.DIRECTORY_UNAVAILABLE }, 'trial call goes through')
  t.equal(cb.state, 'open', 'failed trial reopens')
  advance(5000)
  t.equal(cb.accepting, true, 'trial due')
  inner.up()
  inner.delayMs = 20
  const trial = cb.findByAddress('alice@example.org')
  t.equal(cb.accepting, false, 'trial running')
  await t.rejects(cb.findByAddress('bob@example.org'), { code: ErrorCodes.DIRECTORY_CIRCUIT_OPEN }, 'only one trial at a time')
  t.equal((await trial).length, 1)
  t.equal(cb.state, 'closed')
  t.equal(cb.accepting, true)
})

t.test('data errors and successes reset the count; ping passes through', async (t) => {
  const { inner, cb } = setup()
  inner.down()
  await t.rejects(cb.findByAddress('a@example.org'))
  await t.rejects(cb.findByAddress('a@example.org'))
  inner.failure = new DirectoryDataError(ErrorCodes.DUPLICATE_OWNER, 'dup')
  await t.rejects(cb.findByAddress('a@example.org'), { code: ErrorCodes.DUPLICATE_OWNER })
  inner.down()
  await t.rejects(cb.findByAddress('a@example.org'))
  t.equal(cb.state, 'closed', 'count restarted after the data error')
  await t.rejects(cb.ping())
  await t.rejects(cb.ping())
  t.equal(cb.state, 'open')
  inner.up()
  await cb.ping()
  t.equal(cb.state, 'closed')
    t.equal(cb.kind, 'memory', "the inner directory's kind")
  await cb.close()
})
