// The error registry (src/errors.ts) is the one home of every `MH_` code: each declared once,
// with whether it is transient and its HTTP status where it has one. This file keeps it so: the
// declarations are complete and distinct, the statuses clients see do not drift, and no other
// file in src/ spells a code as a string or leaves one unused. It also keeps the codecs in
// src/protocols/ free of src/server/.

import { readdirSync, readFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import ts from 'typescript'
import {
  AdminError,
  ConfigError,
  DeadlineError,
  DirectoryDataError,
  DirectoryError,
  ErrorCodes,
  MailhostdError,
  codeOf,
  declarationOf,
  httpStatusOf,
  type ErrorCode,
} from '../src/errors.js'

const SRC = fileURLToPath(new URL('../src/', import.meta.url))
const REGISTRY_FILE = 'errors.ts'

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []))
}

function parse(name: string, text: string): ts.SourceFile {
  return ts.createSourceFile(name, text, ts.ScriptTarget.Latest, true)
}

function walk(node: ts.Node, visit: (n: ts.Node) => void): void {
  visit(node)
  ts.forEachChild(node, (child) => walk(child, visit))
}

/** Every string and template piece in a file that holds an `MH_` code, as `file:line text`. Comments are not code. */
function codeLiterals(file: ts.SourceFile): string[] {
  const found: string[] = []
  walk(file, (n) => {
    if ((ts.isStringLiteralLike(n) || ts.isTemplateLiteralToken(n)) && /\bMH_[A-Z]/.test(n.text)) {
      found.push(`${file.fileName}:${file.getLineAndCharacterOfPosition(n.getStart()).line + 1} ${n.getText()}`)
    }
  })
  return found
}

/** The names read as `ErrorCodes.NAME` in a file. */
function codeReferences(file: ts.SourceFile): string[] {
  const names: string[] = []
  walk(file, (n) => {
    if (ts.isPropertyAccessExpression(n) && ts.isIdentifier(n.expression) && n.expression.text === 'ErrorCodes') names.push(n.name.text)
  })
  return names
}

const FILES = sources(SRC).map((path) => parse(relative(SRC, path), readFileSync(path, 'utf8')))

t.test('every code is declared once: a distinct MH_ string, transient or not, and a status where it has one', async (t) => {
  const codes = Object.values(ErrorCodes)
  t.ok(codes.length > 0)
  t.same(
    codes.filter((c, i) => codes.indexOf(c) !== i),
    [],
    'no two names share a code',
  )
  for (const [name, code] of Object.entries(ErrorCodes)) {
    t.match(code, /^MH_[A-Z][A-Z_]*[A-Z]$/, `${name}: a stable MH_ code`)
    const d = declarationOf(code)
    t.equal(d.code, code, `${name}: its declaration is its own`)
    t.type(d.transient, 'boolean', `${name}: says whether it is transient`)
    if (d.status !== undefined) t.ok(Number.isInteger(d.status) && d.status >= 400 && d.status <= 599, `${name}: an HTTP error status`)
  }
  t.throws(() => declarationOf('MH_NOT_DECLARED' as ErrorCode), TypeError, 'an undeclared code is a bug, not a default')
})

t.test('the HTTP status of every code, as clients see it in problem+json answers', async (t) => {
  // A status is part of the admin API: changing one must be a decision, made here too.
  // Codes without a status of their own answer 503 when transient and 500 when not.
  const expected: Record<keyof typeof ErrorCodes, number> = {
    CONFIG_INVALID: 500,
    STORE_UNAVAILABLE: 503,
    STORE_MIGRATION: 500,
    DIRECTORY_UNAVAILABLE: 503,
    DIRECTORY_TIMEOUT: 503,
    DIRECTORY_CIRCUIT_OPEN: 503,
    DIRECTORY_DATA: 500,
    DUPLICATE_OWNER: 500,
    ALIAS_LOOP: 500,
    LOOKUP_DEADLINE: 503,
    PASSWORD_SCHEME: 400,
    PASSWORD_BUSY: 503,
    PASSWORD_WORKER: 503,
    UNAUTHORIZED: 401,
    FORBIDDEN: 403,
    VALIDATION: 400,
    NOT_FOUND: 404,
    CONFLICT: 409,
    ADDRESS_TAKEN: 409,
    DOMAIN_NOT_SERVED: 422,
    BACKEND_IN_USE: 409,
    NO_ELIGIBLE_BACKEND: 422,
    ACCOUNT_MOVING: 409,
    MOVE_STATE: 409,
    IDEMPOTENCY_MISMATCH: 422,
    IDEMPOTENCY_IN_PROGRESS: 409,
    DIRECTORY_READ_ONLY: 501,
    DIRECTORY_WRITE: 502,
    DOVEADM_FAILED: 503,
    DOVEADM_REPLY_TOO_LARGE: 500,
    HTTP_NOT_FOUND: 404,
    HTTP_TOO_LARGE: 413,
    HTTP_MEDIA_TYPE: 415,
    HTTP_ERROR: 500,
    HTTP_TIMEOUT: 408,
    HTTP_HEADERS_TOO_LARGE: 431,
    HTTP_MALFORMED: 400,
    LOGIN_NO_SECRET: 503,
    LOGIN_SECRET: 401,
    INTERNAL: 500,
  }
  const actual = Object.fromEntries(Object.entries(ErrorCodes).map(([name, code]) => [name, httpStatusOf(code)]))
  t.same(actual, expected)
})

t.test("an error's transient flag is its code's declaration, whatever the class", async (t) => {
  t.equal(new MailhostdError(ErrorCodes.PASSWORD_BUSY, 'x').transient, true)
  t.equal(new MailhostdError(ErrorCodes.STORE_MIGRATION, 'x').transient, false)
  t.equal(new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, 'x').transient, true)
  t.equal(new DirectoryDataError(ErrorCodes.DUPLICATE_OWNER, 'x').transient, false)
  t.equal(new AdminError(ErrorCodes.CONFLICT, 'x').transient, false)
  t.match(new ConfigError('a.b', 'bad'), { code: ErrorCodes.CONFIG_INVALID, transient: false, key: 'a.b', message: 'a.b: bad' })
  t.match(new DeadlineError(5), { code: ErrorCodes.LOOKUP_DEADLINE, transient: true })
  for (const code of Object.values(ErrorCodes)) t.equal(new MailhostdError(code, 'x').transient, declarationOf(code).transient, code)
})

t.test('codeOf: our code, or MH_INTERNAL for anything else thrown', async (t) => {
  t.equal(codeOf(new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, 'x')), ErrorCodes.DIRECTORY_UNAVAILABLE)
  t.equal(codeOf(new Error('boom')), ErrorCodes.INTERNAL)
  t.equal(codeOf('a string'), ErrorCodes.INTERNAL)
})

t.test('no MH_ string literal in src/ outside the registry', async (t) => {
  // The scanner itself: literals and template pieces count, comments do not.
  const probe = parse('probe.ts', "// MH_COMMENT\nconst a = 'MH_ONE'\nconst b = `x ${a} MH_TWO`\nconst c = 'MAILHOSTD_X'\n")
  t.same(codeLiterals(probe), ["probe.ts:2 'MH_ONE'", 'probe.ts:3 } MH_TWO`'])

  t.ok(FILES.length > 50, 'src/ was read')
  t.same(
    FILES.filter((f) => f.fileName !== REGISTRY_FILE).flatMap(codeLiterals),
    [],
    'use ErrorCodes (src/errors.ts) instead',
  )
})

t.test('every registered code is used in src/', async (t) => {
  const used = new Set(FILES.flatMap(codeReferences))
  t.same(
    Object.keys(ErrorCodes).filter((name) => !used.has(name)),
    [],
    'a code nothing raises, answers or logs',
  )
})

t.test('codecs in src/protocols/ import nothing from src/server/', async (t) => {
  const server = resolve(SRC, 'server')
  const offending: string[] = []
  for (const f of FILES.filter((f) => f.fileName.startsWith('protocols/'))) {
    for (const s of f.statements) {
      if ((ts.isImportDeclaration(s) || ts.isExportDeclaration(s)) && s.moduleSpecifier && ts.isStringLiteral(s.moduleSpecifier)) {
        const target = resolve(SRC, f.fileName, '..', s.moduleSpecifier.text)
        if (target === server || target.startsWith(`${server}/`)) offending.push(`${f.fileName}: ${s.moduleSpecifier.text}`)
      }
    }
  }
  t.same(offending, [])
})
