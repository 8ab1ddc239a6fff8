// The filtered, keyset-paged listings of the admin API (audit log, moves): conditions added one
// by one with their values as numbered parameters, never spliced into the SQL, and one row more
// than the page asked for, which tells whether a next page exists.

export class Filter {
  readonly params: unknown[] = []
  readonly #conditions: string[] = []

  /** Adds `condition`, whose one `?` stands for `value`. */
  add(condition: string, value: unknown): this {
    this.params.push(value)
    this.#conditions.push(condition.replace('?', `$${this.params.length}`))
    return this
  }

  /** `where ...`, or '' when nothing was added. */
  get where(): string {
    return this.#conditions.length > 0 ? `where ${this.#conditions.join(' and ')}` : ''
  }

  /** `limit $n` for one row more than `pageSize`: the extra row only says a next page exists. */
  limitPage(pageSize: number): string {
    return `limit $${this.params.push(pageSize + 1)}`
  }
}
