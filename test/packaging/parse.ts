// Readers for the packaging files the paths test checks: Dockerfile instructions, .dockerignore
// patterns and systemd unit settings. Each reads only as much syntax as this repository's files
// use, and throws on anything else rather than guess, so a new construct is noticed.

export interface Instruction {
  /** Upper-cased: FROM, COPY, RUN, ... */
  readonly op: string
  /** Everything after the instruction word, continuation lines joined. */
  readonly args: string
  readonly line: number
}

/** A Dockerfile's instructions, with comments dropped and `\` continuation lines joined. */
export function dockerfileInstructions(text: string): Instruction[] {
  const out: Instruction[] = []
  let pending: { text: string; line: number } | undefined
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd()
    if (pending === undefined && (line.trim() === '' || line.trimStart().startsWith('#'))) return
    if (pending !== undefined && line.trimStart().startsWith('#')) return // a comment inside a continued instruction
    const continued = line.endsWith('\\')
    const part = continued ? line.slice(0, -1) : line
    pending = pending === undefined ? { text: part, line: i + 1 } : { text: `${pending.text} ${part.trim()}`, line: pending.line }
    if (continued) return
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(pending.text)
    if (!m) throw new Error(`line ${pending.line}: not an instruction: ${pending.text}`)
    out.push({ op: m[1]!.toUpperCase(), args: m[2]!.trim(), line: pending.line })
    pending = undefined
  })
  if (pending !== undefined) throw new Error(`line ${pending.line}: continues past the end of the file`)
  return out
}

/** Arguments of an exec-form (JSON array) or shell-form instruction. */
export function words(args: string): string[] {
  if (args.startsWith('[')) {
    const parsed: unknown = JSON.parse(args)
    if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`not a JSON string array: ${args}`)
    return parsed
  }
  return args.split(/\s+/).filter((w) => w !== '')
}

export interface Copy {
  readonly sources: string[]
  readonly dest: string
  /** --from=STAGE: the sources are in another stage, not in the build context. */
  readonly from: string | undefined
  readonly line: number
}

/** COPY and ADD instructions: flags parsed, sources and destination split. */
export function copies(instructions: readonly Instruction[]): Copy[] {
  return instructions
    .filter((i) => i.op === 'COPY' || i.op === 'ADD')
    .map((i) => {
      let rest = i.args
      let from: string | undefined
      for (let m = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest); m; m = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest)) {
        if (m[1] === 'from') from = m[2]
        rest = rest.slice(m[0].length)
      }
      const w = words(rest)
      if (w.length < 2) throw new Error(`line ${i.line}: ${i.op} needs a source and a destination`)
      return { sources: w.slice(0, -1), dest: w[w.length - 1]!, from, line: i.line }
    })
}

/** `ENV KEY=VALUE ...` settings, in order (later ones win). */
export function envSettings(instructions: readonly Instruction[]): Map<string, string> {
  const env = new Map<string, string>()
  for (const i of instructions.filter((x) => x.op === 'ENV')) {
    for (const pair of words(i.args)) {
      const eq = pair.indexOf('=')
      if (eq <= 0) throw new Error(`line ${i.line}: only ENV KEY=VALUE is read here`)
      env.set(pair.slice(0, eq), pair.slice(eq + 1))
    }
  }
  return env
}

/** The instructions of the last stage (from its FROM on): what the image that runs contains. */
export function finalStage(instructions: readonly Instruction[]): Instruction[] {
  const from = instructions.map((i) => i.op).lastIndexOf('FROM')
  return instructions.slice(from)
}

/**
 * Whether a .dockerignore excludes `path` (relative to the build context) or a directory above
 * it. Patterns follow Docker's matching for the forms used here: `*`, `?` and `**`, anchored at
 * the context root; `!` exceptions are refused.
 */
export function dockerignored(ignoreText: string, path: string): boolean {
  const patterns = ignoreText
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
  const clean = path.replace(/^\.\//, '').replace(/\/+$/, '')
  const prefixes = clean.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'))
  return patterns.some((p) => {
    if (p.startsWith('!')) throw new Error(`.dockerignore exception ${p}: not read by this check`)
    const re = globToRegExp(p.replace(/^\/+/, '').replace(/\/+$/, ''))
    return prefixes.some((prefix) => re.test(prefix))
  })
}

function globToRegExp(glob: string): RegExp {
  let re = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*'
      i++
    } else if (c === '*') re += '[^/]*'
    else if (c === '?') re += '[^/]'
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&')
  }
  return new RegExp(`^${re}$`)
}

/** A systemd unit's settings per section; a key given more than once keeps every value. */
export function unitSettings(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>()
  let current: Map<string, string[]> | undefined
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return
    const section = /^\[([A-Za-z]+)\]$/.exec(line)
    if (section) {
      current = new Map()
      sections.set(section[1]!, current)
      return
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line)
    if (!kv || !current) throw new Error(`line ${i + 1}: not a setting inside a section: ${line}`)
    current.set(kv[1]!, [...(current.get(kv[1]!) ?? []), kv[2]!])
  })
  return sections
}

/**
 * Packages a stage installs with `apt-get install`, in order: the words after `install` up to the
 * end of that command (`&&`, `;` or the end of the RUN), flags left out.
 */
export function aptInstalls(instructions: readonly Instruction[]): string[] {
  return instructions
    .filter((i) => i.op === 'RUN')
    .flatMap((i) => [...i.args.matchAll(/apt-get\s+install\s+([^&;]*)/g)].flatMap((m) => m[1]!.split(/\s+/).filter((w) => w !== '' && !w.startsWith('-'))))
}

export interface DebconfSelection {
  readonly owner: string
  readonly question: string
  readonly type: string
  readonly value: string
  readonly line: number
}

/** `echo 'OWNER QUESTION TYPE VALUE' | debconf-set-selections` answers of RUN instructions. */
export function debconfSelections(instructions: readonly Instruction[]): DebconfSelection[] {
  return instructions
    .filter((i) => i.op === 'RUN')
    .flatMap((i) =>
      [...i.args.matchAll(/echo\s+'([^']*)'\s*\|\s*debconf-set-selections/g)].map((m) => {
        const parts = /^(\S+)\s+(\S+)\s+(\S+)\s+(.*)$/.exec(m[1]!)
        if (!parts) throw new Error(`line ${i.line}: not OWNER QUESTION TYPE VALUE: ${m[1]}`)
        return { owner: parts[1]!, question: parts[2]!, type: parts[3]!, value: parts[4]!, line: i.line }
      }),
    )
}

/** A section of `doveconf` output: the top level (type ''), `passdb lua { }`, `lua_settings { }`, ... */
export interface DoveconfSection {
  readonly type: string
  readonly name: string | undefined
  readonly settings: ReadonlyMap<string, string>
  readonly sections: readonly DoveconfSection[]
}

/**
 * `doveconf` output (Dovecot 2.4, with or without -n) as a tree. Reads `key = value` lines
 * (the value may be empty), `type [name] {` and `}`; comment lines are skipped. Anything else
 * throws, so a construct this reader does not know is noticed rather than dropped.
 */
export function doveconfTree(text: string): DoveconfSection {
  type Open = { type: string; name: string | undefined; settings: Map<string, string>; sections: Open[] }
  const top: Open = { type: '', name: undefined, settings: new Map(), sections: [] }
  const stack: Open[] = [top]
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) return
    const current = stack[stack.length - 1]!
    if (line === '}') {
      if (stack.length === 1) throw new Error(`line ${i + 1}: } without a section`)
      stack.pop()
      return
    }
    const open = /^(\S+)(?:\s+("(?:[^"\\]|\\.)*"|\S+))?\s*\{$/.exec(line)
    if (open) {
      const name = open[2]?.startsWith('"') ? (JSON.parse(open[2]) as string) : open[2]
      const section: Open = { type: open[1]!, name, settings: new Map(), sections: [] }
      current.sections.push(section)
      stack.push(section)
      return
    }
    const setting = /^(\S+)\s*=\s?(.*)$/.exec(line)
    if (!setting) throw new Error(`line ${i + 1}: not a doveconf line: ${line}`)
    current.settings.set(setting[1]!, setting[2]!)
  })
  if (stack.length !== 1) throw new Error(`doveconf output ends inside section ${stack[stack.length - 1]!.type}`)
  return top
}

/** The sections of `parent` of one type (and name, when given). */
export function sectionsOf(parent: DoveconfSection, type: string, name?: string): DoveconfSection[] {
  return parent.sections.filter((s) => s.type === type && (name === undefined || s.name === name))
}
