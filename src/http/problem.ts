// RFC 9457 problem+json answers with our stable codes: one place decides the status an error
// gets, so the admin API, the login endpoints and fastify's own validation all answer alike.

import type { FastifyReply } from 'fastify'
import { ErrorCodes, httpStatusOf, isMailhostdError, type ErrorCode } from '../errors.js'

export interface ProblemBody {
  type: 'about:blank'
  title: string
  status: number
  detail: string
  code: string
}

const TITLES: Record<number, string> = {
  400: 'Bad request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not found',
  409: 'Conflict',
  413: 'Payload too large',
  415: 'Unsupported media type',
  422: 'Unprocessable request',
  500: 'Internal error',
  501: 'Not implemented',
  502: 'Bad gateway',
  503: 'Service unavailable',
}

export function problemBody(status: number, code: ErrorCode, detail: string): ProblemBody {
  return { type: 'about:blank', title: TITLES[status] ?? (status >= 500 ? 'Error' : 'Request refused'), status, detail, code }
}

/** Answers with the code's declared status (errors.ts). */
export function sendProblem(reply: FastifyReply, code: ErrorCode, detail: string): FastifyReply {
  const status = httpStatusOf(code)
  return reply.code(status).type('application/problem+json').send(problemBody(status, code, detail))
}

/** fastify's own refusals (unparsable JSON, wrong media type, too large) under our codes. */
const HTTP_CODES: Record<number, ErrorCode> = {
  400: ErrorCodes.VALIDATION,
  413: ErrorCodes.HTTP_TOO_LARGE,
  415: ErrorCodes.HTTP_MEDIA_TYPE,
}

/** The problem an error becomes. Unknown errors are 500 with no detail: their text may hold anything. */
export function problemOf(err: unknown): ProblemBody {
  const e = err as { statusCode?: number; code?: string; message?: string; validation?: unknown }
  if (isMailhostdError(err)) {
    const status = httpStatusOf(err.code)
    return problemBody(status, err.code, status >= 500 && status !== 501 && status !== 502 && status !== 503 ? 'internal error' : err.message)
  }
  if (e?.validation) return problemBody(httpStatusOf(ErrorCodes.VALIDATION), ErrorCodes.VALIDATION, e.message ?? 'invalid request')
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return problemBody(e.statusCode, HTTP_CODES[e.statusCode] ?? ErrorCodes.HTTP_ERROR, e.message ?? 'bad request')
  }
  return problemBody(httpStatusOf(ErrorCodes.INTERNAL), ErrorCodes.INTERNAL, 'internal error')
}
