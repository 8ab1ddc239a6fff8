// Who may ask /v1/lookup, /metrics and /v1/openapi.json (admin.readEndpoints). Between them they
// say which addresses exist and where they live, to anyone who asks. On loopback (the default
// listener) that is no more than the socketmap port tells local processes, so they stay open;
// bound to any other address, the HTTP port is the one Dovecot's and nginx's hosts reach, and the
// endpoints become an address oracle for everything on those networks. There they take a read
// (or admin) token unless the operator opens them explicitly. /healthz and /readyz stay open
// for probes; they reveal nothing about addresses.

import { isIPv4 } from 'node:net'
import type { TokenAuth } from '../admin/tokens.js'
import type { ReadEndpoints } from '../config/schema.js'
import { AdminError, ErrorCodes } from '../errors.js'

/** An address only this host can reach: 127.0.0.0/8, ::1, IPv4-mapped loopback, or localhost. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '')
  if (h === 'localhost' || h === '::1') return true
  const v4 = /^::ffff:(.+)$/.exec(h)?.[1] ?? h
  return isIPv4(v4) && v4.startsWith('127.')
}

/** Whether the read endpoints need a token for a listener bound to `boundHost`. */
export function readsNeedToken(mode: ReadEndpoints, boundHost: string): boolean {
  return mode === 'token' || (mode === 'auto' && !isLoopback(boundHost))
}

export interface ReadAccessOptions {
  readonly mode: () => ReadEndpoints
  /** The address the listener is bound to. */
  readonly boundHost: () => string
  /** The admin tokens (any role may read); undefined: none configured. */
  readonly auth: () => TokenAuth | undefined
}

/** The parts of a request and reply the hook uses (fastify's types differ per logger type). */
type Hook = (
  req: { readonly headers: { readonly authorization?: string | undefined } },
  reply: { header(name: string, value: string): unknown },
  done: (err?: Error) => void,
) => void

/** The onRequest hook of the read endpoints: before anything is parsed, like the admin API's. */
export function readAccess(o: ReadAccessOptions): Hook {
  return (req, reply, done) => {
    if (!readsNeedToken(o.mode(), o.boundHost())) {
      done()
      return
    }
    const auth = o.auth()
    if (auth?.authenticate(req.headers.authorization) !== undefined) {
      done()
      return
    }
    void reply.header('WWW-Authenticate', 'Bearer realm="mailhostd"')
    const why = req.headers.authorization === undefined ? 'no bearer token' : 'unknown bearer token'
    const where = o.mode() === 'token' ? 'admin.readEndpoints is token' : 'the HTTP listener is not on loopback (admin.readEndpoints)'
    done(new AdminError(ErrorCodes.UNAUTHORIZED, `${why}: this endpoint needs a read or admin token because ${where}`))
  }
}
