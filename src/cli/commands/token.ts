// `mailhostctl token new`: an admin API token and the line for `admin.tokens`, made offline.
// The daemon stores only the token's SHA-256, so the token is shown here once and never again.

import { randomBytes } from 'node:crypto'
import { hashToken, newToken as makeToken, TOKEN_NAME_PATTERN } from '../../admin/tokens.js'
import { parse, UsageError } from '../args.js'
import { print, subcommands, type Ctx, type Group } from '../command.js'
import { EXIT } from '../exit.js'

export interface NewToken {
  token: string
  name: string
  role: 'read' | 'admin'
  sha256: string
}

const USAGE = `usage: mailhostctl token new <name> [--role read|admin]

Makes a token (shown once: give it to its user) and the line to add to admin.tokens in the
configuration, which holds only its SHA-256. <name> is the actor the audit log records. The
role is read (every GET) unless --role admin (everything). Needs no daemon.`

const NAME = new RegExp(TOKEN_NAME_PATTERN)

/** A token as the daemon's tokens module makes and hashes them, with its config entry's fields. */
export function newToken(name: string, role: NewToken['role'], random: (n: number) => Buffer = randomBytes): NewToken {
  const token = makeToken(random)
  return { token, name, role, sha256: hashToken(token) }
}

// YAML reads these plain words as booleans or null (1.1 and 1.2 spellings, any case).
const YAML_WORDS = new Set(['true', 'false', 'yes', 'no', 'on', 'off', 'y', 'n', 'null', '~'])

/**
 * A name as a YAML scalar: plain when YAML reads it back as the same string, else double-quoted
 * (a JSON string is a valid YAML one). `123`, `null` or `@ops` unquoted would be a number, a null
 * or a syntax error.
 */
export function yamlScalar(s: string): string {
  return /^[A-Za-z_][A-Za-z0-9_.@-]*$/.test(s) && !YAML_WORDS.has(s.toLowerCase()) ? s : JSON.stringify(s)
}

/** The `admin.tokens` entry, as a YAML flow mapping. */
export function configLine(t: NewToken): string {
  // Quoted: YAML would read an all-digit hash as a number.
  return `{name: ${yamlScalar(t.name)}, role: ${t.role}, sha256: "${t.sha256}"}`
}

function create(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, { role: { type: 'string' } }, [1, 1], '<name>')
  const name = positionals[0]!
  if (!NAME.test(name)) throw new UsageError('a token name is 1-64 letters, digits and _ . @ -')
  const role = values.role ?? 'read'
  if (role !== 'read' && role !== 'admin') throw new UsageError(`--role is read or admin, not ${JSON.stringify(role)}`)
  const t = newToken(name, role)
  print(ctx, t, () => `token:  ${t.token}\nconfig: ${configLine(t)}\n`)
  if (!ctx.json) ctx.io.err('mailhostctl: the token is shown only now; the configuration keeps its SHA-256\n')
  return Promise.resolve(EXIT.OK)
}

export const token: Group = { name: 'token', usage: USAGE, run: subcommands({ new: create }) }
