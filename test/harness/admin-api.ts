// A small client of the admin REST API for e2e tests: JSON in, status and parsed body out, the
// bearer token and Idempotency-Key as options. mailhostctl is tested on its own; tests of the
// daemon's behaviour talk HTTP directly so a CLI bug cannot hide a daemon bug or the reverse.

export interface ApiReply<T = any> {
  status: number
  headers: Headers
  body: T
}

export interface ApiOptions {
  token?: string | undefined
  idempotencyKey?: string
  /** Raw body text instead of JSON.stringify(body) (malformed-request tests). */
  raw?: string
  contentType?: string
}

/** The demo tokens (fixtures/demo/mailhostd.yaml); tests that configure their own use these too. */
export const ADMIN_TOKEN = 'demo-admin-token'
export const READ_TOKEN = 'demo-read-token'
export const DEMO_TOKENS = [
  { name: 'demo-admin', role: 'admin', sha256: '91c16f0d6cc1bec3c3603972182a07c66ff4fa71618a975e963d6dbe42b6dd37' },
  { name: 'demo-read', role: 'read', sha256: 'd2771ba6a5ce166531a002e101dc6f4259fe1926281ac28f9bdaedf21e381866' },
]

export function adminApi(port: number, defaultToken: string | undefined = ADMIN_TOKEN) {
  const base = `http://127.0.0.1:${port}`
  async function call<T = any>(method: string, path: string, body?: unknown, o: ApiOptions = {}): Promise<ApiReply<T>> {
    const headers: Record<string, string> = {}
    const token = 'token' in o ? o.token : defaultToken
    if (token !== undefined) headers.authorization = `Bearer ${token}`
    if (o.idempotencyKey !== undefined) headers['idempotency-key'] = o.idempotencyKey
    const payload = o.raw ?? (body === undefined ? undefined : JSON.stringify(body))
    if (payload !== undefined) headers['content-type'] = o.contentType ?? 'application/json'
    const res = await fetch(`${base}${path}`, { method, headers, ...(payload === undefined ? {} : { body: payload }), signal: AbortSignal.timeout(30_000) })
    const text = await res.text()
    let parsed: unknown = text
    try {
      parsed = text === '' ? undefined : JSON.parse(text)
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, headers: res.headers, body: parsed as T }
  }
  return {
    call,
    get: <T = any>(path: string, o?: ApiOptions) => call<T>('GET', path, undefined, o),
    post: <T = any>(path: string, body?: unknown, o?: ApiOptions) => call<T>('POST', path, body, o),
    patch: <T = any>(path: string, body?: unknown, o?: ApiOptions) => call<T>('PATCH', path, body, o),
    del: <T = any>(path: string, o?: ApiOptions) => call<T>('DELETE', path, undefined, o),
  }
}

export type AdminApi = ReturnType<typeof adminApi>
