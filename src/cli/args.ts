// Argument parsing shared by the command groups: node:util parseArgs in strict mode (an unknown
// or misspelt option is a usage error, never silently ignored), plus the checks parseArgs does
// not make: how many positionals, integers, options that exclude each other.

import { parseArgs, type ParseArgsConfig } from 'node:util'

/** Bad command line: exit 64 with the group's usage. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

/** `--help` anywhere in a command's arguments: print the group's usage and exit 0. */
export class HelpRequested extends Error {
  constructor() {
    super('help requested')
    this.name = 'HelpRequested'
  }
}

type Options = NonNullable<ParseArgsConfig['options']>

/**
 * Parses one subcommand's arguments. `positionals` is the accepted count, [min, max]; `what`
 * names them for the error message ("<address>").
 */
export function parse<const O extends Options>(args: readonly string[], options: O, positionals: readonly [number, number], what = '') {
  let parsed
  try {
    parsed = parseArgs({ args: [...args], options, allowPositionals: true, strict: true })
  } catch (e) {
    // --help is no declared option, so it always lands here; checked first so that it also
    // wins over a genuine mistake elsewhere on the line.
    if (wantsHelp(args)) throw new HelpRequested()
    throw new UsageError((e as Error).message)
  }
  const n = parsed.positionals.length
  const [min, max] = positionals
  if (n < min) throw new UsageError(`missing ${what}`.trimEnd())
  if (n > max) throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[max])}`)
  return { values: parsed.values, positionals: parsed.positionals }
}

/** True when --help or -h comes before any `--` (after it, both are plain arguments). */
export function wantsHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === '--') return false
    if (a === '--help' || a === '-h') return true
  }
  return false
}

/** An integer option in [min, max]; absent stays absent. */
export function integer(option: string, value: string | undefined, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined
  const n = /^\d+$/.test(value) ? Number(value) : NaN
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`
    throw new UsageError(`--${option} needs a whole number ${range}, not ${JSON.stringify(value)}`)
  }
  return n
}

/** At most one of the named options may be given. */
export function exclusive(values: Record<string, unknown>, ...names: string[]): void {
  const given = names.filter((n) => values[n] !== undefined && values[n] !== false)
  if (given.length > 1) throw new UsageError(`${given.map((n) => `--${n}`).join(' and ')} exclude each other`)
}

/** A body without the fields left undefined, so that PATCH changes only what was asked for. */
export function defined<T extends Record<string, unknown>>(fields: T): Partial<T> {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as Partial<T>
}
