// Preloaded into the daemon by the scale benchmark only (node --expose-gc --import=this):
// on SIGUSR2, a full garbage collection, then one JSON line with the memory figures, so RSS is
// read without the garbage of the warm-up's listing. Never part of the product.

process.on('SIGUSR2', () => {
  globalThis.gc?.()
  const m = process.memoryUsage()
  process.stderr.write(`${JSON.stringify({ msg: 'bench gc', rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers })}\n`)
})
