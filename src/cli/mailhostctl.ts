#!/usr/bin/env node
// mailhostctl: the command-line client of a running mailhostd (lookups and the admin REST API,
// docs/admin.md). This file only binds main() to the process; exit codes are in exit.ts.

import { errorLine, EXIT } from './exit.js'
import { processIo } from './io.js'
import { main } from './main.js'

// `mailhostctl account list | head` closes the pipe early: that is the reader's choice, not an
// error worth a stack trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? EXIT.OK)
  throw e
})

main(process.argv.slice(2), processIo).then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    process.stderr.write(errorLine(e))
    process.exitCode = EXIT.FAILURE
  },
)
