// The real password worker (src/auth/password-worker.ts), except that a job whose password is
// one of the words below ends the thread the way a real fault would: an exit from inside
// (`die:exit`), or an exception nobody catches (`die:throw`). For the pool's crash tests.

import { parentPort } from 'node:worker_threads'
// Loaded first, so its listener is there when the first job arrives; it starts each job, and the
// listener below then ends the thread before that job can answer.
import '../../src/auth/password-worker.js'

parentPort!.on('message', (job: { plain: string }) => {
  if (job.plain === 'die:exit') process.exit(70)
  if (job.plain === 'die:throw') throw new Error('worker fault')
})
