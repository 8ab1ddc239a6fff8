// Where the token and passwords come from: a file, standard input or the environment, never
// the command line, where every user of the host can read them in the process list. No message
// here includes a secret, only where it was to come from.

import { readFile } from 'node:fs/promises'
import type { Io } from './io.js'
import { exclusive, UsageError } from './args.js'

/** The token could not be had (unreadable or malformed file): exit 77, like having none. */
export class TokenUnavailable extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'TokenUnavailable'
  }
}

/** `s` without one trailing newline (LF or CRLF): what editors and `echo` add to a file. */
export function stripNewline(s: string): string {
  return s.endsWith('\r\n') ? s.slice(0, -2) : s.endsWith('\n') ? s.slice(0, -1) : s
}

// A bearer token is visible ASCII. Checked here because fetch rejects a bad header value with
// an error message that quotes the value, which would print the token.
const TOKEN = /^[!-~]+$/

/** The token from --token-file, else $MAILHOSTD_TOKEN, else none (the daemon answers 401). */
export async function readToken(file: string | undefined, env: Io['env']): Promise<string | undefined> {
  let token: string
  let from: string
  if (file !== undefined) {
    from = `token file ${file}`
    try {
      token = stripNewline(await readFile(file, 'utf8'))
    } catch (e) {
      throw new TokenUnavailable(`cannot read ${from}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
    }
  } else if (env.MAILHOSTD_TOKEN) {
    from = '$MAILHOSTD_TOKEN'
    token = env.MAILHOSTD_TOKEN
  } else return undefined
  if (token === '') throw new TokenUnavailable(`${from} is empty`)
  if (!TOKEN.test(token)) throw new TokenUnavailable(`${from} does not hold a token: one line of printable characters without blanks`)
  return token
}

export interface PasswordOptions {
  'password-stdin'?: boolean
  'password-file'?: string
  'no-password'?: boolean
}

/**
 * The password the options ask for: a string, null for --no-password (remove it), or undefined
 * when none was asked for. One trailing newline is removed; everything else is the password.
 */
export async function readPassword(values: PasswordOptions, io: Io): Promise<string | null | undefined> {
  exclusive(values as Record<string, unknown>, 'password-stdin', 'password-file', 'no-password')
  let password: string
  if (values['no-password']) return null
  if (values['password-stdin']) password = stripNewline(await io.stdin())
  else if (values['password-file'] !== undefined) {
    try {
      password = stripNewline(await readFile(values['password-file'], 'utf8'))
    } catch (e) {
      throw new UsageError(`cannot read password file ${values['password-file']}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
    }
  } else return undefined
  if (password === '') throw new UsageError('the password is empty')
  return password
}
