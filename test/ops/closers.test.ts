// Closers: what the daemon built is closed newest first, each once, and a part that fails to
// close is logged without keeping the older parts open.

import t from 'tap'
import { Closers } from '../../src/closers.js'
import { createLogger } from '../../src/log.js'

t.test('closed in the reverse order of building, each once; a failure is logged and the rest still close', async (t) => {
  let logged = ''
  const logger = createLogger('warn', { write: (s: string) => void (logged += s) })
  const closers = new Closers()
  const closed: string[] = []
  closers.push('store', () => void closed.push('store'))
  closers.push('directory', async () => {
    closed.push('directory')
    throw new Error('socket hang up')
  })
  closers.push('change bus', async () => {
    await new Promise((r) => setTimeout(r, 5))
    closed.push('change bus')
  })
  await closers.close(logger)
  t.same(closed, ['change bus', 'directory', 'store'])
  t.match(logged, /directory close failed/)
  t.match(logged, /socket hang up/)
  await closers.close(logger)
  t.same(closed, ['change bus', 'directory', 'store'], 'a second close closes nothing again')
})
