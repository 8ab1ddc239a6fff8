// Secrets never reach the log, whatever object a caller passes in: every field named like a
// secret is censored at any depth, in a line's fields and in child loggers' bindings.
//
// Why not pino's `redact` paths: pino runs every top-level value of every line through the
// redactor as soon as one path starts with a wildcard (`*.password`), and @pinojs/redact parses
// and walks each path again for each value, strings included: 7-14 % of the daemon's CPU under
// login load (docs/benchmarks.md). This walk looks at each key once, allocates nothing when
// there is nothing to censor (the per-request lines carry no secrets), and covers any depth
// instead of the two levels the wildcard paths reached.
//
// Not covered, as before: secrets inside message strings, and objects interpolated into the
// message (`log.info('x %o', obj)`): never log objects that way.

import type { Bindings, ChildLoggerOptions, Logger } from 'pino'

/**
 * Keys whose value is censored wherever they appear. Header names in lower case, as Node
 * gives them: `auth-pass` (nginx auth_http), `x-auth-key` (the login endpoints' shared secret).
 */
export const SECRET_KEYS: ReadonlySet<string> = new Set([
  'password',
  'bindPassword',
  'passwordHash',
  'token',
  'secret',
  'authorization',
  'cookie',
  'url',
  'storeUrl',
  'auth-pass',
  'x-auth-key',
])

export const CENSOR = '[redacted]'

/**
 * Makes `logger.child(bindings)` censor its bindings, for `logger` and every logger made from it
 * (pino applies formatters.bindings to the root's base only). pino children inherit `child`
 * from their parent, so setting it on the root covers them all.
 */
export function censorChildBindings<L extends Logger>(logger: L): L {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with each child's own `this` below
  const child = logger.child as unknown as (this: unknown, bindings: Bindings, options?: ChildLoggerOptions) => unknown
  Object.defineProperty(logger, 'child', {
    value: function (this: unknown, bindings: Bindings, options?: ChildLoggerOptions) {
      return child.call(this, censorSecrets(bindings), options)
    },
    writable: true,
    configurable: true,
  })
  return logger
}

/** Deeper than this, a value is censored whole: nothing legitimate nests that far. */
export const MAX_DEPTH = 16

/**
 * `value` with every secret-named field censored. Returns `value` itself when nothing needed
 * censoring, and never modifies it: a censored object is a shallow copy along the censored path.
 */
export function censorSecrets<T>(value: T): T {
  return censor(value, 0, []) as T
}

function censor(value: unknown, depth: number, ancestors: object[]): unknown {
  if (typeof value !== 'object' || value === null) return value
  if (ArrayBuffer.isView(value) || value instanceof Date) return value
  // A cycle: the serializer prints it as [Circular]; its fields are being censored above.
  if (ancestors.includes(value)) return value
  if (depth >= MAX_DEPTH) return CENSOR
  ancestors.push(value)
  try {
    return Array.isArray(value) ? censorArray(value, depth, ancestors) : censorObject(value, depth, ancestors)
  } finally {
    ancestors.pop()
  }
}

function censorArray(value: unknown[], depth: number, ancestors: object[]): unknown[] {
  let out: unknown[] | undefined
  for (let i = 0; i < value.length; i++) {
    const v = value[i]
    const c = censor(v, depth + 1, ancestors)
    if (c !== v) {
      out ??= value.slice()
      out[i] = c
    }
  }
  return out ?? value
}

function censorObject(value: object, depth: number, ancestors: object[]): object {
  let out: object | undefined
  const set = (key: string, v: unknown) => {
    out ??= copyOf(value)
    Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true })
  }
  const fields = value as Record<string, unknown>
  for (const key in fields) {
    if (!Object.prototype.hasOwnProperty.call(fields, key)) continue
    const v = fields[key]
    if (SECRET_KEYS.has(key)) {
      if (v !== undefined) set(key, CENSOR)
      continue
    }
    const c = censor(v, depth + 1, ancestors)
    if (c !== v) set(key, c)
  }
  // pino's error serializer prints an error's cause too; it is not an enumerable field.
  if (value instanceof Error && value.cause !== undefined) {
    const c = censor(value.cause, depth + 1, ancestors)
    if (c !== value.cause) {
      out ??= copyOf(value)
      Object.defineProperty(out, 'cause', { value: c, enumerable: false, writable: true, configurable: true })
    }
  }
  return out ?? value
}

/** Same prototype and own properties (an error keeps its message and stack). */
function copyOf(value: object): object {
  const descriptors = Object.getOwnPropertyDescriptors(value) as Record<PropertyKey, PropertyDescriptor>
  // A frozen object's copy must still take the censored values.
  for (const key of Reflect.ownKeys(descriptors)) descriptors[key]!.configurable = true
  // Newer V8 (Node 22+) makes an error's stack an own accessor that reads the original error's
  // internal slot, so a copied accessor reads nothing: copy the text itself.
  if (value instanceof Error && 'stack' in descriptors) {
    descriptors.stack = { value: value.stack, enumerable: descriptors.stack.enumerable ?? false, writable: true, configurable: true }
  }
  return Object.defineProperties(Object.create(Object.getPrototypeOf(value) as object | null) as object, descriptors)
}
