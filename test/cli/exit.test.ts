// mailhostctl's exit codes (docs/admin.md: 0 ok, 1 not found, 2 daemon failure, 3 refused, 64
// usage, 69 unreachable, 77 no token or not allowed) and its error lines.

import t from 'tap'
import { ApiError, BadAnswer, DaemonUnreachable } from '../../src/cli/client.js'
import { errorLine, EXIT, exitFor, exitForStatus } from '../../src/cli/exit.js'
import { UsageError } from '../../src/cli/args.js'
import { TokenUnavailable } from '../../src/cli/secrets.js'

t.test('exit code per HTTP status', async (t) => {
  const expected: [number, number][] = [
    [400, 3],
    [401, 77],
    [403, 77],
    [404, 1],
    [405, 3],
    [409, 3],
    [422, 3],
    [429, 3],
    [500, 2],
    [501, 2],
    [502, 2],
    [503, 2],
    [301, 2],
    [101, 2],
  ]
  for (const [status, code] of expected) t.equal(exitForStatus(status), code, String(status))
  t.same(EXIT, { OK: 0, NOT_FOUND: 1, FAILURE: 2, REFUSED: 3, USAGE: 64, UNAVAILABLE: 69, NOPERM: 77 })
})

t.test('exit code per failure', async (t) => {
  t.equal(exitFor(new ApiError(409, 'MH_CONFLICT', 'exists')), 3)
  t.equal(exitFor(new ApiError(404, 'MH_NOT_FOUND', 'no such account')), 1)
  t.equal(exitFor(new DaemonUnreachable('cannot reach', false)), 69)
  t.equal(exitFor(new UsageError('bad')), 64)
  t.equal(exitFor(new TokenUnavailable('cannot read token file')), 77)
  t.equal(exitFor(new BadAnswer('not JSON')), 2)
  t.equal(exitFor(new TypeError('a bug')), 2)
  t.equal(exitFor('thrown string'), 2)
})

t.test('error lines: `mailhostctl: <detail> (<code>)`, control characters escaped', async (t) => {
  t.equal(errorLine(new ApiError(409, 'MH_ADDRESS_TAKEN', 'alice@example.org is taken')), 'mailhostctl: alice@example.org is taken (MH_ADDRESS_TAKEN)\n')
  t.equal(errorLine(new Error('two\nlines\x1b[2J')), 'mailhostctl: two\\nlines\\x1b[2J\n')
  t.equal(errorLine(42), 'mailhostctl: 42\n')
})

t.test('ApiError.from reads problem+json, and makes do without it', async (t) => {
  const full = ApiError.from(409, 'Conflict', { type: 'about:blank', title: 'Conflict', status: 409, detail: 'exists', code: 'MH_CONFLICT' }, null)
  t.same([full.status, full.code, full.detail, full.message], [409, 'MH_CONFLICT', 'exists', 'exists (MH_CONFLICT)'])
  const titleOnly = ApiError.from(404, 'Not Found', { title: 'Not Found' }, null)
  t.same([titleOnly.code, titleOnly.detail], ['HTTP 404', 'Not Found'])
  const html = ApiError.from(502, 'Bad Gateway', undefined, null)
  t.same([html.code, html.detail], ['HTTP 502', 'Bad Gateway'], 'a proxy page: the status line')
  t.equal(ApiError.from(500, '', ['odd'], null).detail, 'HTTP 500')
  t.equal(ApiError.from(500, '', { detail: '', code: 7 }, null).message, 'HTTP 500 (HTTP 500)', 'empty or non-string fields ignored')
  t.equal(ApiError.from(308, 'Permanent Redirect', undefined, 'https://admin.example.org/').detail, 'redirected to https://admin.example.org/: point --url there')
})
