// HTTP endpoints under load with autocannon: Dovecot's passdb verify and nginx's auth_http
// (docs/login.md for the request shapes). Bounded by duration and by request count (autocannon
// alone stops on one or the other, so we count responses and stop it). Each endpoint is asked
// once first and must answer a routed login, or the figures would measure a failure path.

import autocannon from 'autocannon'

export interface HttpResult {
  readonly requests: number
  readonly rps: number
  /** Milliseconds (autocannon's own histogram). */
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly non2xx: number
  readonly errors: number
  /** Responses whose body did not say the login was routed. */
  readonly mismatches: number
}

export interface HttpLoad {
  readonly url: string
  readonly method: 'GET' | 'POST'
  readonly headers: Record<string, string>
  readonly body?: string
  /** A routed answer's whole body: autocannon counts every other body as a mismatch. */
  readonly expectBody?: string
}

/** POST /v1/dovecot/passdb/verify for one user, as dovecot/mailhostd.lua sends it. */
export function passdbVerify(port: number, secret: string, user: string, password: string): HttpLoad {
  return {
    url: `http://127.0.0.1:${port}/v1/dovecot/passdb/verify`,
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-auth-key': secret },
    body: JSON.stringify({ user, password, service: 'imap', remoteIp: '192.0.2.10', localIp: '127.0.0.1' }),
  }
}

/** GET /v1/nginx/auth for one IMAP login, with the headers nginx's auth_http sends. */
export function nginxAuth(port: number, secret: string, user: string, password: string): HttpLoad {
  return {
    url: `http://127.0.0.1:${port}/v1/nginx/auth`,
    method: 'GET',
    headers: {
      'x-auth-key': secret,
      'auth-method': 'plain',
      'auth-user': encodeURIComponent(user),
      'auth-pass': encodeURIComponent(password),
      'auth-protocol': 'imap',
      'auth-login-attempt': '1',
      'client-ip': '192.0.2.10',
      'client-host': '[UNAVAILABLE]',
    },
  }
}

/** One request outside the load, to check the endpoint routes the login before timing it. */
export async function checkRouted(load: HttpLoad): Promise<void> {
  const r = await fetch(load.url, { method: load.method, headers: load.headers, ...(load.body === undefined ? {} : { body: load.body }) })
  const body = await r.text()
  const ok = load.method === 'GET' ? r.headers.get('auth-status') === 'OK' : /"result":"ok"/.test(body)
  if (!ok) throw new Error(`${load.url} did not route the login: HTTP ${r.status} ${r.headers.get('auth-status') ?? ''} ${body.slice(0, 200)}`)
}

/** `signal` ends the run early (a background load stopped when the measured one is done). */
export async function runHttpLoad(load: HttpLoad, o: { connections: number; durationMs: number; maxRequests: number; signal?: AbortSignal }): Promise<HttpResult> {
  await checkRouted(load)
  let responses = 0
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: load.url,
        method: load.method,
        headers: load.headers,
        ...(load.body === undefined ? {} : { body: load.body }),
        connections: o.connections,
        duration: o.durationMs / 1000,
        ...(load.expectBody === undefined ? {} : { expectBody: load.expectBody }),
      },
      (err: unknown, res) => (err ? reject(err instanceof Error ? err : new Error(`autocannon: ${JSON.stringify(err)}`)) : resolve(res)),
    )
    instance.on('response', () => {
      if (++responses === o.maxRequests) instance.stop()
    })
    if (o.signal?.aborted) instance.stop()
    else o.signal?.addEventListener('abort', () => instance.stop(), { once: true })
  })
  return {
    requests: result.requests.total,
    rps: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    non2xx: result.non2xx,
    errors: result.errors,
    mismatches: result.mismatches,
  }
}
