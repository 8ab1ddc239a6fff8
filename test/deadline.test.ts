import t from 'tap'
import { withinDeadline } from '../src/deadline.js'

t.test('answers with the work when it settles first', async (t) => {
  t.equal(await withinDeadline(1000, async () => 42), 42)
  await t.rejects(withinDeadline(1000, () => Promise.reject(new Error('refused'))), { message: 'refused' })
})

t.test('a work that never settles fails at the deadline', async (t) => {
  const started = performance.now()
  await t.rejects(withinDeadline(30, () => new Promise(() => undefined)), { message: 'no answer within 30 ms' })
  t.ok(performance.now() - started >= 25, 'not before the deadline')
})

t.test('a work that throws before returning a promise is its failure, and no timer is left', async (t) => {
  await t.rejects(
    withinDeadline(60_000, () => {
      throw new Error('sync')
    }),
    { message: 'sync' },
  )
  // A timer left behind would keep this process alive for a minute; tap's timeout would say so.
})
