// Named placeholders in admin-written queries: the markers each engine's client binds, and the
// parts of a query that are text (strings, quoted identifiers, comments, casts) left alone.

import fc from 'fast-check'
import t from 'tap'
import { bindNamedPlaceholders, bindValues, type SqlEngine } from '../../src/directory/sql-placeholders.js'
import { ConfigError } from '../../src/errors.js'

const KEY = 'directory.queries.owner'
const ALLOWED = ['address', 'local', 'domain']
const bind = (sql: string, engine: SqlEngine, allowed = ALLOWED) => bindNamedPlaceholders(sql, engine, allowed, KEY)

t.test('markers: ? per occurrence for MySQL, $n per distinct name for PostgreSQL', async (t) => {
  const sql = 'SELECT host FROM hostcntrl WHERE pw_name = :local AND pw_domain = :domain OR CONCAT(pw_name, "@", pw_domain) = :address AND :local <> \'\''
  t.same(bind(sql, 'mysql'), {
    text: 'SELECT host FROM hostcntrl WHERE pw_name = ? AND pw_domain = ? OR CONCAT(pw_name, "@", pw_domain) = ? AND ? <> \'\'',
    names: ['local', 'domain', 'address', 'local'],
  })
  t.same(bind(sql.replace('"@"', "'@'"), 'postgresql'), {
    text: "SELECT host FROM hostcntrl WHERE pw_name = $1 AND pw_domain = $2 OR CONCAT(pw_name, '@', pw_domain) = $3 AND $1 <> ''",
    names: ['local', 'domain', 'address'],
  })
  t.same(bindValues(bind('SELECT :domain, :local, :domain', 'mysql'), { local: 'bob', domain: 'example.org' }), ['example.org', 'bob', 'example.org'])
  t.same(bindValues(bind('SELECT :domain, :local, :domain', 'postgresql'), { local: 'bob', domain: 'example.org' }), ['example.org', 'bob'])
  t.throws(() => bindValues(bind('SELECT :local', 'mysql'), {}), /no value for :local/)
})

t.test('text that only looks like a placeholder stays text', async (t) => {
  const cases: [SqlEngine, string][] = [
    ['mysql', "SELECT 'a :address b', 'it''s :local', 'x\\' :domain' FROM t"],
    ['mysql', 'SELECT `:address` FROM t -- :local\nWHERE 1 # :domain'],
    ['mysql', 'SELECT "x:address" /* :local */ FROM t'],
    ['mysql', 'SET @n := 1'],
    ['postgresql', "SELECT 'a :address', E'x\\' :local', \"col:domain\" FROM t"],
    ['postgresql', 'SELECT $$ :address $$, $q$ :local $q$ FROM t -- :domain'],
    ['postgresql', "SELECT x::text, '2026-12-07 12:00:00'::timestamptz, now()::date FROM t"],
    ['postgresql', "SELECT e.x FROM t e WHERE 'it''s' = 'it''s'"],
    ['mysql', 'SELECT a:b FROM t'],
    ['postgresql', 'SELECT a[1:2], a[:2], b[2:] FROM t'],
  ]
  for (const [engine, sql] of cases) t.same(bind(sql, engine), { text: sql, names: [] }, `${engine}: ${sql}`)
  t.same(bind("SELECT ':address', :address", 'postgresql'), { text: "SELECT ':address', $1", names: ['address'] })
  t.same(bind('SELECT :address::text', 'postgresql'), { text: 'SELECT $1::text', names: ['address'] }, 'a placeholder with a cast')
  t.same(bind('SELECT 1 FROM t WHERE x = :address;', 'mysql').text, 'SELECT 1 FROM t WHERE x = ?;')
  t.same(bind("SELECT 'a' || :local", 'postgresql').names, ['local'])
  t.same(bind('SELECT x$1 FROM t', 'postgresql').text, 'SELECT x$1 FROM t', 'a $ inside an identifier')
  t.same(bind('SELECT $ FROM t', 'postgresql').text, 'SELECT $ FROM t')
})

t.test('refusals name the key and what is wrong', async (t) => {
  const refused: [SqlEngine, string, RegExp][] = [
    ['mysql', 'SELECT * FROM t WHERE a = :user', /unknown placeholder :user; this query may use :address, :local, :domain/],
    ['mysql', 'SELECT * FROM t WHERE a = ?', /positional parameter \(\?\)/],
    ['postgresql', 'SELECT * FROM t WHERE a = $1', /positional parameter \(\$1\)/],
    ['mysql', "SELECT 'unterminated", /unterminated string starting at character 8/],
    ['mysql', 'SELECT `x', /unterminated quoted identifier/],
    ['postgresql', 'SELECT "x', /unterminated quoted identifier/],
    ['postgresql', 'SELECT /* x', /unterminated \/\* comment/],
    ['postgresql', 'SELECT $q$ x', /unterminated dollar-quoted string/],
    ['mysql', '   ', /an empty query/],
  ]
  for (const [engine, sql, why] of refused) {
    const e = t.throws(() => bind(sql, engine), ConfigError, `${engine}: ${sql}`) as unknown as ConfigError
    t.equal(e.key, KEY)
    t.match(e.message, new RegExp(`^${KEY.replace(/\./g, '\\.')}: `))
    t.match(e.message, why)
  }
  t.throws(() => bindNamedPlaceholders('SELECT :address', 'mysql', [], KEY), /may use none/)
  t.same(bind("SELECT 'ok?'", 'mysql').text, "SELECT 'ok?'", 'a ? inside a string is text')
  t.same(bind("SELECT '$1'", 'postgresql').text, "SELECT '$1'", 'a $1 inside a string is text')
})

/** A query assembled from pieces: text that holds no placeholder, and placeholders. */
const piece = (engine: SqlEngine) =>
  fc.oneof(
    fc.constantFrom(...ALLOWED).map((name) => ({ kind: 'name' as const, name })),
    fc.constantFrom('SELECT x FROM t WHERE a = ', ' AND b <> ', ', ', ' OR ', ' = LOWER(', ') ', '(1) ').map((text) => ({ kind: 'text' as const, text })),
    fc
      .string({ unit: fc.constantFrom('a', ':', ' ', 'x', '_', '\\', '?', '$', '1', '\u00e9', 'd') })
      .map((s) => (engine === 'mysql' ? s.replace(/\\/g, '\\\\') : s.replace(/\\/g, '')))
      .map((s) => ({ kind: 'text' as const, text: ` '${s}' ` })),
    fc.string({ unit: fc.constantFrom('a', ':', ' ', 'b', '_', '?', '$') }).map((s) => ({ kind: 'text' as const, text: ` /* ${s} */ ` })),
  )

for (const engine of ['mysql', 'postgresql'] as const) {
  t.test(`${engine}: every placeholder outside text is bound, everything else is kept`, async () => {
    fc.assert(
      fc.property(fc.array(piece(engine), { minLength: 1, maxLength: 12 }), (pieces) => {
        // A placeholder right after an identifier character would not be one: keep a space before it.
        const sql = `SELECT 1 ${pieces.map((p) => (p.kind === 'name' ? ` :${p.name} ` : p.text)).join('')}`
        const q = bind(sql, engine)
        // What the query must become: each placeholder its engine's marker, every other piece as it was.
        const distinct: string[] = []
        const expected = `SELECT 1 ${pieces
          .map((p) => {
            if (p.kind === 'text') return p.text
            if (engine === 'mysql') return ' ? '
            if (!distinct.includes(p.name)) distinct.push(p.name)
            return ` $${distinct.indexOf(p.name) + 1} `
          })
          .join('')}`
        const used = pieces.flatMap((p) => (p.kind === 'name' ? [p.name] : []))
        return q.text === expected && q.names.join() === (engine === 'mysql' ? used : distinct).join()
      }),
      { numRuns: 500 },
    )
  })
}
