#!/usr/bin/env node
// mailhostd entry point: pick the config (--config, MAILHOSTD_CONFIG, or the demo), start the
// daemon, and turn signals into orderly actions. Exit codes follow sysexits: 78 for a bad
// configuration (systemd should not restart-loop on it), 1 for any other start failure.

import { dirname, isAbsolute, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { loadConfigFile } from './config/load.js'
import { toMs } from './config/duration.js'
import type { Config } from './config/schema.js'
import { Daemon } from './daemon.js'
import { ConfigError, describeError } from './errors.js'
import { EX_CONFIG } from './exit-codes.js'
import { createLogger } from './log.js'
import { PACKAGE_ROOT, VERSION } from './version.js'

export const DEMO_CONFIG = resolve(PACKAGE_ROOT, 'fixtures/demo/mailhostd.yaml')
export const DEMO_SQL = resolve(PACKAGE_ROOT, 'fixtures/demo/directory.sql')

const HELP = `usage: mailhostd [--config FILE] [--seed-sql FILE]... [--check-config]

  --config FILE    YAML configuration (default: $MAILHOSTD_CONFIG; without either,
                   the demo directory of fixtures/demo is served)
  --seed-sql FILE  apply this SQL file to the store at start, after migrations
                   (repeatable; write it idempotently, e.g. ON CONFLICT DO NOTHING)
  --check-config   validate the configuration and exit (0 valid, 78 invalid)
  --version        print the version
  --help           this text

Signals: SIGTERM/SIGINT drain and stop; SIGHUP re-reads the configuration file and applies
what can change while running (docs/operations.md).`

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      config: { type: 'string', short: 'c' },
      'seed-sql': { type: 'string', multiple: true },
      'check-config': { type: 'boolean' },
      version: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  })
  if (values.help) {
    process.stdout.write(`${HELP}\n`)
    return 0
  }
  if (values.version) {
    process.stdout.write(`mailhostd ${VERSION}\n`)
    return 0
  }

  const path = values.config ?? process.env.MAILHOSTD_CONFIG
  const demo = path === undefined || path === ''
  // The same file, environment and path rules at start and at every SIGHUP.
  const load = (): Config => {
    const config = loadConfigFile(demo ? DEMO_CONFIG : path)
    // Relative paths in a config file mean relative to that file, as in most daemons' configs;
    // the demo keeps its data under the package's own data/ directory.
    const base = demo ? PACKAGE_ROOT : dirname(resolve(path))
    if (!isAbsolute(config.dataDir)) config.dataDir = resolve(base, config.dataDir)
    return config
  }
  let config: Config
  try {
    config = load()
  } catch (e) {
    process.stderr.write(`mailhostd: configuration error: ${describeError(e)}\n`)
    return e instanceof ConfigError ? EX_CONFIG : 1
  }
  if (values['check-config']) {
    process.stdout.write(`${demo ? DEMO_CONFIG : path}: ok (directory ${config.directory.type}, ${config.domains.length} domains, ${config.backends.length} backends)\n`)
    return 0
  }

  const logger = createLogger(config.log.level)
  if (demo) logger.info({ config: DEMO_CONFIG }, 'no --config or MAILHOSTD_CONFIG given: serving the demo directory')
  const seedSql = [...(demo ? [DEMO_SQL] : []), ...(values['seed-sql'] ?? []).map((f) => resolve(f))]
  const daemon = new Daemon(config, logger, { seedSql })

  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'stopping: finishing in-flight requests')
    daemon.close(toMs(config.limits.shutdownGrace)).then(
      () => process.exit(0),
      (e: unknown) => {
        logger.error({ err: describeError(e) }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGHUP', () => {
    if (stopping) return
    logger.info({ config: demo ? DEMO_CONFIG : path }, 'SIGHUP: reloading the configuration')
    void daemon.reloadFrom(load)
  })
  process.on('unhandledRejection', (reason) => logger.error({ err: describeError(reason) }, 'unhandled rejection'))

  try {
    await daemon.start()
  } catch (e) {
    logger.fatal({ err: describeError(e), code: (e as { code?: string }).code }, 'mailhostd could not start')
    await daemon.close(0).catch(() => undefined)
    return e instanceof ConfigError ? EX_CONFIG : 1
  }
  return -1 // keep running
}

main().then(
  (code) => {
    if (code >= 0) process.exitCode = code
  },
  (e: unknown) => {
    process.stderr.write(`mailhostd: ${describeError(e)}\n`)
    process.exitCode = 1
  },
)
