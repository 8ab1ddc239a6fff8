// The floor: a socketmap server in Node that answers every request with one constant value
// and does nothing else (no parsing of the key, no cache, no logging, no metrics). Whatever
// mailhostd spends on top of this is its own cost; no Node daemon on this machine can beat it.
// Runs as its own process, like mailhostd, so both compete for the cores the same way:
//   node bench/floor-server.mjs   -> prints "port NNNN"
// Plain JavaScript, so it starts in milliseconds without the TypeScript loader.

import { Buffer } from 'node:buffer'
import { createServer } from 'node:net'

const VALUE = 'OK mx1.example.org'
const REPLY = Buffer.from(`${Buffer.byteLength(VALUE)}:${VALUE},`)

const server = createServer({ noDelay: true }, (socket) => {
  let buf = Buffer.alloc(0)
  socket.on('data', (d) => {
    buf = buf.length === 0 ? d : Buffer.concat([buf, d])
    // Consume every complete netstring (len ":" payload ","), answer each; keep a partial one.
    for (;;) {
      const colon = buf.indexOf(0x3a)
      if (colon < 0) return
      const end = colon + Number(buf.subarray(0, colon).toString('latin1')) + 2
      if (buf.length < end) return
      buf = buf.subarray(end)
      socket.write(REPLY)
    }
  })
  socket.on('error', () => socket.destroy())
})

server.listen(0, '127.0.0.1', () => {
  const addr = server.address()
  process.stdout.write(`port ${typeof addr === 'object' && addr ? addr.port : 0}\n`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
