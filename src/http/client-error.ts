// Requests Node's HTTP parser refuses before any route runs: a control byte other than TAB in a
// header value, a bare CR or LF, a header line that is not `name: value`. For the nginx auth
// endpoint that is what an nginx without the "Mail: host validation" fix sends when a client's
// reverse DNS name holds such bytes (nginx-headers.ts). nginx reads only the answer's headers,
// whatever the status: with Auth-Status it shows the client mailhostd's refusal and closes the
// session, where a bare 400 would make it log "did not send server or port" and show "internal
// server error". Other paths get a problem+json answer, as every other refusal here.

import type { Socket } from 'node:net'
import type { FastifyServerOptions } from 'fastify'
import { ErrorCodes, httpStatusOf, type ErrorCode } from '../errors.js'
import type { Logger } from '../log.js'
import { LogThrottle } from '../log.js'
import type { Metrics } from '../metrics.js'
import { NGINX_REFUSAL } from './nginx-headers.js'
import { problemBody } from './problem.js'

type ClientErrorHandler = NonNullable<FastifyServerOptions['clientErrorHandler']>

const NGINX_PATH = 'GET /v1/nginx/'

/** The problem code and detail for a parser refusal outside the nginx endpoint. */
function generic(code: string | undefined): [ErrorCode, string] {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return [ErrorCodes.HTTP_TIMEOUT, 'request not received in time']
  if (code === 'HPE_HEADER_OVERFLOW') return [ErrorCodes.HTTP_HEADERS_TOO_LARGE, 'request headers too large']
  return [ErrorCodes.HTTP_MALFORMED, 'malformed HTTP request']
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' }

export function clientErrorHandler(o: { logger: Logger; metrics?: Metrics | undefined }): ClientErrorHandler {
  const throttle = new LogThrottle(60_000)
  return (err, socket: Socket) => {
    // A reset connection has nobody to answer.
    if (err.code === 'ECONNRESET' || socket.destroyed) return
    // The packet is the chunk being parsed: nginx writes its request in one, so the request line
    // is there. Only its first bytes are read; the rest holds the password.
    // (fastify types rawPacket as JSON; Node hands over the Buffer.)
    const packet: unknown = err.rawPacket
    const nginx = Buffer.isBuffer(packet) && packet.subarray(0, NGINX_PATH.length).toString('latin1') === NGINX_PATH
    let head: string
    if (nginx) {
      o.metrics?.logins.inc({ protocol: 'nginx', result: 'invalid' })
      // err.code is llhttp's (HPE_*), a closed set; err.reason and the packet may quote input.
      throttle.run(`nginx:${err.code}`, (suppressed) =>
        o.logger.warn({ protocol: 'nginx', code: err.code, suppressed }, 'nginx auth request refused: unparsable HTTP request'),
      )
      const fields = Object.entries(NGINX_REFUSAL).map(([k, v]) => `${k}: ${v}\r\n`).join('')
      head = `HTTP/1.1 400 Bad Request\r\n${fields}Content-Length: 0\r\nConnection: close\r\n\r\n`
    } else {
      const [code, detail] = generic(err.code)
      const status = httpStatusOf(code)
      const body = JSON.stringify(problemBody(status, code, detail))
      head = `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
    }
    if (socket.writable) socket.write(head)
    socket.destroy()
  }
}
