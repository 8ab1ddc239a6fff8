// Runs mailhostctl as a process for the command tests, built from the current src/cli.
//
// `npm run build` compiles the whole tree, which in a shared checkout can hold other people's
// half-written files, and a stale dist/ would test yesterday's CLI; the TypeScript loader tap
// uses costs seconds per process. So src/cli is transpiled here, file by file, with the
// project's compiler options (verbatimModuleSyntax and isolatedModules make that exactly what
// tsc emits), into a temp dir, with the rest of src/ beside it. src/cli imports only node
// built-ins and a module of src/admin that does too, so it runs from anywhere.

import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import ts from 'typescript'
import { ROOT } from '../harness/mailhostd.js'
import { run, type RunResult } from '../harness/process.js'

const SRC = join(ROOT, 'src')

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []))
}

/** Transpiles src/ into a fresh temp dir; returns the entry's path and a cleanup. */
export function buildCli(): { entry: string; remove: () => void } {
  const { config } = ts.readConfigFile(join(ROOT, 'tsconfig.json'), (p) => readFileSync(p, 'utf8')) as { config: { compilerOptions: object } }
  const { options } = ts.convertCompilerOptionsFromJson(config.compilerOptions, ROOT)
  const out = mkdtempSync(join(tmpdir(), 'mailhostctl-'))
  for (const file of sources(SRC)) {
    const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), { compilerOptions: { ...options, sourceMap: false }, fileName: file })
    const target = join(out, relative(SRC, file)).replace(/\.ts$/, '.js')
    mkdirSync(dirname(target), { recursive: true })
    writeFileSync(target, outputText)
  }
  return { entry: join(out, 'cli', 'mailhostctl.js'), remove: () => rmSync(out, { recursive: true, force: true }) }
}

/** A runner for one built CLI; `env` replaces the CLI's environment (no inherited MAILHOSTD_*). */
export function ctlRunner(entry: string) {
  return (args: readonly string[], opts: { env?: Record<string, string>; input?: string } = {}): Promise<RunResult> =>
    run(process.execPath, [entry, ...args], { env: { PATH: process.env.PATH ?? '', ...opts.env }, ...(opts.input === undefined ? {} : { input: opts.input }), timeoutMs: 30_000 })
}
