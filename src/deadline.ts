// A bound on how long one check may take. Readiness probes and the status page's parts each run
// under one, so a peer that accepts a request and never answers fails its check instead of
// holding the whole answer; what the caller makes of the failure (a failed probe, a part the
// page cannot show) stays the caller's.

/** `work`'s result, or a rejection once `ms` have passed without one. The timer never outlives the race. */
export async function withinDeadline<T>(ms: number, work: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([work(), deadline])
  } finally {
    clearTimeout(timer)
  }
}
