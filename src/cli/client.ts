// HTTP client for mailhostctl: one place that knows the daemon's URL, timeouts and how an
// unreachable daemon is reported.

export class DaemonUnreachable extends Error {
  constructor(url: string, cause: unknown) {
    super(`cannot reach mailhostd at ${url}: ${cause instanceof Error ? (cause.cause instanceof Error ? cause.cause.message : cause.message) : String(cause)}`)
    this.name = 'DaemonUnreachable'
  }
}

export const DEFAULT_URL = 'http://127.0.0.1:10090'

export async function getJson<T>(base: string, path: string, query: Record<string, string>, timeoutMs = 10_000): Promise<{ status: number; body: T }> {
  const url = new URL(path, base.endsWith('/') ? base : `${base}/`)
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v)
  let res: Response
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } })
  } catch (e) {
    throw new DaemonUnreachable(base, e)
  }
  return { status: res.status, body: (await res.json()) as T }
}
