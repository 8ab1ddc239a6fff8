// Queries a site's administrator writes against their own tables (issue 16) name their inputs
// `:address`, `:domain` and so on. This turns such a text into what the engine's client binds:
// `?` per occurrence for MySQL/MariaDB, `$n` per distinct name for PostgreSQL. Values are always
// bound by the client, never spliced into the text, so no address can change what a query means.
// Only the query's own syntax is read here: strings, quoted identifiers and comments are skipped
// so that a `:x` inside them stays text, and PostgreSQL's `::type` casts and MySQL's `:=` are not
// placeholders. A text this cannot read with certainty is refused with the config key named.

import { ConfigError } from '../errors.js'

export const SQL_ENGINES = ['mysql', 'postgresql'] as const
export type SqlEngine = (typeof SQL_ENGINES)[number]

export interface BoundQuery {
  /** The text with each placeholder replaced by the engine's own marker. */
  readonly text: string
  /** The placeholder name for each marker, in binding order (`$n` is names[n - 1]). */
  readonly names: readonly string[]
}

const NAME = /[A-Za-z_][A-Za-z0-9_]*/y

/**
 * Rewrites `sql`'s named placeholders for `engine`. `allowed` lists the names this query may use;
 * `key` is its configuration key, named in every refusal.
 */
export function bindNamedPlaceholders(sql: string, engine: SqlEngine, allowed: readonly string[], key: string): BoundQuery {
  const refuse = (what: string): never => {
    throw new ConfigError(key, what)
  }
  const names: string[] = []
  const pgIndex = new Map<string, number>()
  let out = ''
  let i = 0
  /** Copies sql[i..end) unchanged and moves on. */
  const copyTo = (end: number) => {
    out += sql.slice(i, end)
    i = end
  }
  /** The end of a quoted run opened at `i` by `q`, the closing quote included. */
  const quotedEnd = (q: string, backslashEscapes: boolean): number => {
    for (let j = i + 1; j < sql.length; j++) {
      const c = sql[j]
      if (backslashEscapes && c === '\\') {
        j++
        continue
      }
      if (c === q) {
        if (sql[j + 1] === q) {
          j++
          continue
        }
        return j + 1
      }
    }
    return refuse(`an unterminated ${q === "'" ? 'string' : 'quoted identifier'} starting at character ${i + 1}`)
  }
  while (i < sql.length) {
    const c = sql[i]!
    const next = sql[i + 1]
    if (c === "'") {
      // MySQL reads backslash escapes in strings (unless NO_BACKSLASH_ESCAPES); PostgreSQL only in E'' strings.
      const eString = engine === 'postgresql' && /[eE]/.test(sql[i - 1] ?? '') && !/[A-Za-z0-9_]/.test(sql[i - 2] ?? '')
      copyTo(quotedEnd("'", engine === 'mysql' || eString))
    } else if (c === '"') {
      copyTo(quotedEnd('"', engine === 'mysql'))
    } else if (c === '`' && engine === 'mysql') {
      copyTo(quotedEnd('`', false))
    } else if ((c === '-' && next === '-') || (c === '#' && engine === 'mysql')) {
      const end = sql.indexOf('\n', i)
      copyTo(end === -1 ? sql.length : end)
    } else if (c === '/' && next === '*') {
      const end = sql.indexOf('*/', i + 2)
      if (end === -1) refuse(`an unterminated /* comment starting at character ${i + 1}`)
      copyTo(end + 2)
    } else if (c === '$' && engine === 'postgresql' && /[0-9]/.test(next ?? '') && !/[A-Za-z0-9_$]/.test(sql[i - 1] ?? '')) {
      refuse('a positional parameter ($1); name the value instead (:address, :domain, ...)')
    } else if (c === '$' && engine === 'postgresql' && !/[A-Za-z0-9_]/.test(sql[i - 1] ?? '')) {
      // A dollar-quoted string: $$...$$ or $tag$...$tag$.
      const tag = /\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/y
      tag.lastIndex = i
      const open = tag.exec(sql)
      if (!open) {
        copyTo(i + 1)
        continue
      }
      const end = sql.indexOf(open[0], i + open[0].length)
      if (end === -1) refuse(`an unterminated dollar-quoted string starting at character ${i + 1}`)
      copyTo(end + open[0].length)
    } else if (c === '?' && engine === 'mysql') {
      refuse('a positional parameter (?); name the value instead (:address, :domain, ...)')
    } else if (c === ':' && (next === ':' || next === '=')) {
      // PostgreSQL's ::type cast, MySQL's := assignment.
      copyTo(i + 2)
    } else if (c === ':' && !/[A-Za-z0-9_]/.test(sql[i - 1] ?? '')) {
      NAME.lastIndex = i + 1
      const m = NAME.exec(sql)
      if (!m) {
        copyTo(i + 1)
        continue
      }
      const name = m[0]
      if (!allowed.includes(name)) refuse(`unknown placeholder :${name}; this query may use ${allowed.map((a) => `:${a}`).join(', ') || 'none'}`)
      if (engine === 'mysql') {
        names.push(name)
        out += '?'
      } else {
        let n = pgIndex.get(name)
        if (n === undefined) {
          names.push(name)
          pgIndex.set(name, (n = names.length))
        }
        out += `$${n}`
      }
      i += 1 + name.length
    } else {
      copyTo(i + 1)
    }
  }
  if (out.trim() === '') refuse('an empty query')
  return { text: out, names }
}

/** The values to bind, in the order `q` names them. */
export function bindValues(q: BoundQuery, values: Readonly<Record<string, unknown>>): unknown[] {
  return q.names.map((name) => {
    if (!(name in values)) throw new RangeError(`no value for :${name}`)
    return values[name]
  })
}
