// The read-only status page at `/` on the HTTP listener (docs/operations.md): any admin token
// may view it, as a bearer token or as the password of HTTP Basic, so that a browser's own login
// prompt opens it. The data is gathered per request (status-data.ts) and rendered on the server
// (status-html.ts); the answer carries no script and may load nothing from anywhere.

import type { FastifyPluginCallback } from 'fastify'
import type { Backends } from '../admin/backends.js'
import type { TokenAuth } from '../admin/tokens.js'
import { statusData, type StatusDaemon } from './status-data.js'
import { renderStatus, renderUnauthorized } from './status-html.js'

export interface StatusPageOptions {
  readonly daemon: StatusDaemon
  readonly auth: TokenAuth
  readonly backends: Pick<Backends, 'list'>
}

const HTML = 'text/html; charset=utf-8'

/** The page shows accounts and audit entries: never cached, framed, or sent on as a referrer. */
const HEADERS = {
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
}

export function statusPage(o: StatusPageOptions): FastifyPluginCallback {
  return (scope, _opts, done) => {
    scope.get('/', { schema: { hide: true } }, async (req, reply) => {
      void reply.headers(HEADERS)
      const viewer = o.auth.authenticate(req.headers.authorization, { basic: true })
      if (!viewer) {
        const reason = !o.auth.configured
          ? 'No tokens are configured: set admin.tokens in the configuration (mailhostctl token new makes one) to use this page.'
          : req.headers.authorization === undefined
            ? 'This page needs a token.'
            : 'That token is not valid.'
        return reply.code(401).header('www-authenticate', 'Basic realm="mailhostd"').type(HTML).send(renderUnauthorized(reason))
      }
      return reply.type(HTML).send(renderStatus(await statusData(o.daemon, o.backends), viewer))
    })
    done()
  }
}
