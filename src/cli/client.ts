// HTTP client of the daemon's REST API: one place that knows the base URL, the bearer token,
// JSON bodies, timeouts, and how answers become values or typed errors (ApiError for a
// problem+json refusal, DaemonUnreachable when no answer came). Only node built-ins: the CLI
// starts fast and runs from any directory.

export const DEFAULT_URL = 'http://127.0.0.1:10090'

/** No answer: connection refused, reset, or timed out. */
export class DaemonUnreachable extends Error {
  /**
   * True when the request may have reached the daemon (reset, timeout): repeating it is only
   * safe with an Idempotency-Key. A refused connection sent nothing; repeating it at once would
   * meet the same closed port.
   */
  readonly retryable: boolean
  constructor(message: string, retryable: boolean) {
    super(message)
    this.name = 'DaemonUnreachable'
    this.retryable = retryable
  }
}

/** The daemon answered with an error status (problem+json, RFC 9457). */
export class ApiError extends Error {
  readonly status: number
  /** The problem's stable `code` (one of src/errors.ts), or `HTTP <status>` when the body had none. */
  readonly code: string
  readonly detail: string
  constructor(status: number, code: string, detail: string) {
    super(`${detail} (${code})`)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.detail = detail
  }

  static from(status: number, statusText: string, body: unknown, location: string | null): ApiError {
    const problem = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>
    const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined)
    let detail = str(problem.detail) ?? str(problem.title) ?? (statusText || `HTTP ${status}`)
    // A redirect is not followed: the Authorization header must not go where --url did not say.
    if (status >= 300 && status < 400 && location) detail = `redirected to ${location}: point --url there`
    return new ApiError(status, str(problem.code) ?? `HTTP ${status}`, detail)
  }
}

/** The daemon answered success with something that is not what the API promises. */
export class BadAnswer extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'BadAnswer'
  }
}

export interface ApiRequest {
  readonly method: 'GET' | 'POST' | 'PATCH' | 'DELETE'
  /** Relative to the base URL, from apiPath(). */
  readonly path: string
  /** Undefined values are left out. */
  readonly query?: Readonly<Record<string, string | number | undefined>>
  /** Sent as JSON when defined. */
  readonly body?: unknown
  readonly headers?: Readonly<Record<string, string>>
  /** Repeat once on reset or timeout: only for requests the daemon deduplicates (Idempotency-Key). */
  readonly retry?: boolean
}

export interface ApiResponse<T = unknown> {
  readonly status: number
  /** The parsed JSON body; undefined for an empty one (204). */
  readonly body: T
  /** `Idempotent-Replayed: true`: the answer to an earlier request with the same key. */
  readonly replayed: boolean
}

/** What commands need from the daemon; tests pass a recording fake. */
export interface Api {
  send<T = unknown>(req: ApiRequest): Promise<ApiResponse<T>>
}

export interface ClientOptions {
  readonly url: string
  readonly token?: string | undefined
  readonly timeoutMs?: number
  /** Told why a request is being repeated (connection reset, timeout). */
  readonly onRetry?: (reason: string) => void
}

/** `v1/<segment>/...`, each segment percent-encoded (addresses hold `@`, `+`, `/`). */
export function apiPath(...segments: readonly (string | number)[]): string {
  return ['v1', ...segments.map((s) => encodeURIComponent(String(s)))].join('/')
}

/** The URL as it may be shown: without user and password. */
export function displayUrl(url: string | URL): string {
  const u = new URL(url)
  u.username = ''
  u.password = ''
  return u.href.replace(/\/$/, '')
}

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED'])

export class AdminClient implements Api {
  private readonly base: URL
  private readonly token: string | undefined
  private readonly timeoutMs: number
  private readonly onRetry: ((reason: string) => void) | undefined

  constructor(opts: ClientOptions) {
    // Paths are joined relative to the base, so a daemon behind a proxy prefix works too.
    this.base = new URL(opts.url.endsWith('/') ? opts.url : `${opts.url}/`)
    this.token = opts.token
    this.timeoutMs = opts.timeoutMs ?? 30_000
    this.onRetry = opts.onRetry
  }

  async send<T = unknown>(req: ApiRequest): Promise<ApiResponse<T>> {
    try {
      return await this.once<T>(req)
    } catch (e) {
      if (!req.retry || !(e instanceof DaemonUnreachable) || !e.retryable) throw e
      this.onRetry?.(e.message)
      return await this.once<T>(req)
    }
  }

  private async once<T>(req: ApiRequest): Promise<ApiResponse<T>> {
    const url = new URL(req.path, this.base)
    for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v))
    const headers: Record<string, string> = { accept: 'application/json, application/problem+json', ...req.headers }
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`
    // No content-type without a body: fastify refuses an empty body declared as JSON.
    if (req.body !== undefined) headers['content-type'] = 'application/json'
    let res: Response
    let text: string
    try {
      res = await fetch(url, {
        method: req.method,
        headers,
        body: req.body === undefined ? null : JSON.stringify(req.body),
        redirect: 'manual',
        signal: AbortSignal.timeout(this.timeoutMs),
      })
      text = await res.text()
    } catch (e) {
      throw this.unreachable(req, e)
    }
    let body: unknown
    if (text !== '') {
      try {
        body = JSON.parse(text)
      } catch {
        if (res.ok) throw new BadAnswer(`${req.method} ${url.pathname}: the daemon answered ${res.status} with a body that is not JSON`)
      }
    }
    if (!res.ok) throw ApiError.from(res.status, res.statusText, body, res.headers.get('location'))
    return { status: res.status, body: body as T, replayed: res.headers.get('idempotent-replayed') === 'true' }
  }

  private unreachable(req: ApiRequest, e: unknown): DaemonUnreachable {
    const where = `mailhostd at ${displayUrl(this.base)}`
    // A write that got no answer may or may not have been made: say so rather than guess.
    const maybe = req.method === 'GET' ? '' : '; the change may or may not have been made'
    if (e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError')) {
      return new DaemonUnreachable(`no answer from ${where} within ${this.timeoutMs / 1000} s${maybe}`, true)
    }
    // fetch wraps the socket error in "fetch failed"; the cause says what happened.
    const cause = e instanceof Error && e.cause instanceof Error ? e.cause : e
    const code = (cause as { code?: unknown } | null)?.code
    const reset = typeof code === 'string' && RESET_CODES.has(code)
    const reason = cause instanceof Error ? cause.message : String(cause)
    return reset
      ? new DaemonUnreachable(`connection to ${where} lost: ${reason}${maybe}`, true)
      : new DaemonUnreachable(`cannot reach ${where}: ${reason}`, false)
  }
}
