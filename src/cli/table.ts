// Human-readable output: aligned tables for lists and key/value blocks for single objects.
// Values come from the daemon and may hold anything (a move's detail is a hook's output), so
// control characters are escaped: a value can neither break the alignment nor drive the
// terminal with escape sequences.

export interface Column<R> {
  readonly header: string
  readonly value: (row: R) => string
  /** Counts read better right-aligned. */
  readonly align?: 'left' | 'right'
}

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }

/** The string with C0 and C1 control characters written as \n, \r, \t or \xNN. */
export function printable(s: string): string {
  let out = ''
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0
    out += c < 0x20 || (c >= 0x7f && c < 0xa0) ? (NAMED[ch] ?? `\\x${c.toString(16).padStart(2, '0')}`) : ch
  }
  return out
}

/** Rows under a header line, columns two spaces apart, no trailing blanks. */
export function table<R>(rows: readonly R[], columns: readonly Column<R>[]): string {
  const cells = rows.map((r) => columns.map((c) => printable(c.value(r))))
  // A reduce, not Math.max(...): `--all` can give more rows than a call may have arguments.
  const widths = columns.map((c, i) => cells.reduce((w, row) => Math.max(w, row[i]!.length), c.header.length))
  const line = (values: readonly string[]) =>
    values
      .map((v, i) => (columns[i]!.align === 'right' ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  return [line(columns.map((c) => c.header)), ...cells.map(line)].map((l) => `${l}\n`).join('')
}

/**
 * One `key  value` line per pair, values aligned. A value with several lines (a failed move's
 * hook output) continues under the first, indented to the value column.
 */
export function keyValue(pairs: readonly (readonly [string, string])[]): string {
  const width = pairs.reduce((w, [k]) => Math.max(w, k.length), 0)
  const indent = ' '.repeat(width + 2)
  return pairs
    .map(([k, v]) => {
      const lines = v.replace(/\n+$/, '').split('\n').map(printable)
      return `${`${k.padEnd(width)}  ${lines.join(`\n${indent}`)}`.trimEnd()}\n`
    })
    .join('')
}

/** A list as `a, b`, or `-` when empty or absent. */
export function list(values: readonly (string | number)[] | null | undefined): string {
  return values && values.length > 0 ? values.map(String).join(', ') : '-'
}

/** A value, or `-` for null and absent. */
export function text(value: string | number | boolean | null | undefined): string {
  return value === null || value === undefined ? '-' : String(value)
}

export function yesNo(value: unknown): string {
  return value ? 'yes' : 'no'
}
