// Reads the one YAML config file, resolves secrets, fills defaults and validates, failing with
// an error that names the bad key (`backends[1].address: must be an IP address`).

import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { Type } from 'typebox'
import { Value } from 'typebox/value'
import { parse as parseYaml, YAMLParseError } from 'yaml'
import { ConfigError } from '../errors.js'
import { toMs } from './duration.js'
import { canonicalAddress, canonicalDomain } from '../resolve/address.js'
import { directoryDriver } from '../directory/drivers/index.js'
import { parseMapName } from '../resolve/maps.js'
import { ConfigSchema, DEFAULT_DIRECTORY_TYPE, HOOK_BASE_ENVIRONMENT, SECRET_PATHS, type Config } from './schema.js'

type Raw = Record<string, unknown>

/** Pins are refreshed every second (daemon.ts); a shorter life would have them lapse between refreshes. */
const MIN_PIN_FOR_MS = 5000

export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    throw new ConfigError('', `cannot read config file ${path}: ${(e as Error).message}`)
  }
  return parseConfig(text, path, env)
}

export function parseConfig(text: string, source: string, env: NodeJS.ProcessEnv = process.env): Config {
  let raw: unknown
  try {
    raw = parseYaml(text)
  } catch (e) {
    const where = e instanceof YAMLParseError && e.linePos ? ` line ${e.linePos[0].line}` : ''
    throw new ConfigError('', `${source}${where}: not valid YAML: ${(e as Error).message.split('\n')[0]}`)
  }
  if (raw === null || raw === undefined) raw = {}
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError('', `${source}: must be a YAML mapping`)
  return validateConfig(raw as Raw, env)
}

export function validateConfig(raw: Raw, env: NodeJS.ProcessEnv = process.env): Config {
  const copy = structuredClone(raw)
  const secretVariables = resolveSecrets(copy, env)
  const schema = schemaFor(copy)
  const withDefaults: unknown = Value.Default(schema, copy)
  const errors = [...Value.Errors(schema, withDefaults)]
  if (errors.length > 0) throw schemaError(errors, (withDefaults as Raw).directory)
  const config = withDefaults as Config
  checkSemantics(config)
  checkHookEnvironment(config, secretVariables)
  return config
}

/**
 * The schema `raw` is checked against: the one in schema.ts, with `directory` the variant of the
 * type it names (its driver's). A type no driver registered is refused here, naming directory.type.
 */
function schemaFor(raw: Raw): typeof ConfigSchema {
  const section = raw.directory
  // Not a mapping: the whole schema reports it (`directory: must be object`).
  if (section !== undefined && (section === null || typeof section !== 'object' || Array.isArray(section))) return ConfigSchema
  const directory = (section ?? {}) as Raw
  directory.type ??= DEFAULT_DIRECTORY_TYPE
  raw.directory = directory
  const variant = directoryDriver(directory.type).config
  return Type.Object({ ...ConfigSchema.properties, directory: variant }, { additionalProperties: false }) as unknown as typeof ConfigSchema
}

/** `/backends/1/address` -> `backends[1].address` */
export function keyOf(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '')
}

interface SchemaIssue {
  keyword: string
  instancePath: string
  message: string
  params: unknown
}

function schemaError(errors: readonly SchemaIssue[], directory: unknown): ConfigError {
  // Prefer the most specific error: unknown keys first (typos), then the deepest path.
  const unknown = errors.find((e) => e.keyword === 'boolean' && e.message === 'schema is false')
  if (unknown) {
    // A section of another directory type (ldap under type sql) is refused, never ignored: the
    // admin would believe it in use. Saying the type in force makes that plain.
    const inDirectory = /^\/directory\/[^/]+$/.test(unknown.instancePath)
    const type = (directory as { type?: unknown }).type
    return new ConfigError(keyOf(unknown.instancePath), inDirectory ? `unknown key for directory.type ${String(type)}` : 'unknown key')
  }
  // A directory type's own section missing (directory.ldap): named, with the type that needs it.
  const section = errors.find((e) => e.keyword === 'required' && e.instancePath === '/directory')
  if (section) {
    const missing = (section.params as { requiredProperties?: string[] }).requiredProperties?.[0]
    const type = (directory as { type?: unknown }).type
    if (missing !== undefined) return new ConfigError(`directory.${missing}`, `required when directory.type is ${String(type)}`)
  }
  const deepest = [...errors].sort((a, b) => b.instancePath.length - a.instancePath.length)[0]!
  return new ConfigError(keyOf(deepest.instancePath) || '(top level)', deepest.message)
}

/** Resolves `<key>File` and `<key>Env`; answers which variable each `<key>Env` named (by `<key>Env`). */
function resolveSecrets(raw: Raw, env: NodeJS.ProcessEnv): Map<string, string> {
  const variables = new Map<string, string>()
  for (const path of SECRET_PATHS) {
    const parent = path.slice(0, -1).reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Raw)[k] : undefined), raw)
    if (!parent || typeof parent !== 'object') continue
    const obj = parent as Raw
    const key = path[path.length - 1]!
    const dotted = path.join('.')
    const fileKey = `${key}File`
    const envKey = `${key}Env`
    const given = [key, fileKey, envKey].filter((k) => obj[k] !== undefined)
    if (given.length > 1) throw new ConfigError(dotted, `give only one of ${given.join(', ')}`)
    if (obj[fileKey] !== undefined) {
      const file = obj[fileKey]
      if (typeof file !== 'string') throw new ConfigError(`${dotted}File`, 'must be a file path')
      try {
        obj[key] = readFileSync(file, 'utf8').replace(/\r?\n$/, '')
      } catch (e) {
        throw new ConfigError(`${dotted}File`, `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`)
      }
      delete obj[fileKey]
    } else if (obj[envKey] !== undefined) {
      const name = obj[envKey]
      if (typeof name !== 'string') throw new ConfigError(`${dotted}Env`, 'must be an environment variable name')
      const value = env[name]
      if (value === undefined || value === '') throw new ConfigError(`${dotted}Env`, `environment variable ${name} is not set`)
      obj[key] = value
      delete obj[envKey]
      variables.set(`${dotted}Env`, name)
    }
  }
  return variables
}

/**
 * The move hook gets HOOK_BASE_ENVIRONMENT and the variables admin.moves.hookEnvironment names
 * (move-hook.ts), never one a secret was read from: a config that would pass one is refused
 * rather than trimmed, so what the hook sees is what the file says.
 */
function checkHookEnvironment(c: Config, secretVariables: ReadonlyMap<string, string>): void {
  const allowed = c.admin.moves.hookEnvironment
  allowed.forEach((name, i) => {
    if (name.startsWith('MAILHOSTD_')) throw new ConfigError(`admin.moves.hookEnvironment[${i}]`, `${name}: the MAILHOSTD_ variables are the ones mailhostd sets for the move`)
  })
  for (const [key, name] of secretVariables) {
    const i = allowed.indexOf(name)
    if (i >= 0) throw new ConfigError(`admin.moves.hookEnvironment[${i}]`, `${name} holds a secret (${key}): the move hook never gets it`)
    if ((HOOK_BASE_ENVIRONMENT as readonly string[]).includes(name)) {
      throw new ConfigError(key, `${name} is passed to every move hook: keep the secret in a variable of its own`)
    }
  }
}

function checkSemantics(c: Config): void {
  const addrOpts = c.addresses
  if (/[\s@]/.test(addrOpts.extensionDelimiters)) {
    throw new ConfigError('addresses.extensionDelimiters', 'must not contain whitespace or @')
  }

  checkBackends(c.backends)

  const names = new Map<string, number>()
  c.domains.forEach((d, i) => {
    const name = canonicalDomain(d.name)
    if (!name) throw new ConfigError(`domains[${i}].name`, `not a valid domain: ${d.name}`)
    if (names.has(name)) throw new ConfigError(`domains[${i}].name`, `duplicate domain ${name}`)
    names.set(name, i)
  })
  c.domains.forEach((d, i) => {
    if (d.aliasFor !== undefined) {
      const target = canonicalDomain(d.aliasFor)
      const ti = target === undefined ? undefined : names.get(target)
      if (ti === undefined) throw new ConfigError(`domains[${i}].aliasFor`, `${d.aliasFor} is not a configured domain`)
      if (c.domains[ti]!.aliasFor !== undefined) {
        throw new ConfigError(`domains[${i}].aliasFor`, `${d.aliasFor} is itself an alias domain`)
      }
      if (d.catchAll) throw new ConfigError(`domains[${i}].catchAll`, "an alias domain uses its target's catch-all")
    }
    d.catchAll?.forEach((t, j) => {
      if (!canonicalAddress(t, addrOpts).ok) throw new ConfigError(`domains[${i}].catchAll[${j}]`, `not an address: ${t}`)
    })
  })

  const ports = new Map<string, string>()
  const claim = (host: string, port: number, key: string) => {
    if (port === 0) return
    const k = `${host}:${port}`
    const prior = ports.get(k)
    if (prior) throw new ConfigError(key, `${k} is already used by ${prior}`)
    ports.set(k, key)
  }
  if (c.listen.socketmap) claim(c.listen.socketmap.host, c.listen.socketmap.port, 'listen.socketmap')
  if (c.listen.http) claim(c.listen.http.host, c.listen.http.port, 'listen.http')
  if (c.listen.policy) claim(c.listen.policy.host, c.listen.policy.port, 'listen.policy')
  if (c.listen.dict && c.listen.dict.path.includes(':')) {
    throw new ConfigError('listen.dict.path', "must not contain ':' (Dovecot's proxy: dict URI ends the path at the first ':')")
  }
  // 0 would close every new connection at once (and mean "no timeout" to Node's HTTP server).
  for (const k of ['firstRequestTimeout', 'httpIdleTimeout'] as const) {
    if (toMs(c.limits[k]) <= 0) throw new ConfigError(`limits.${k}`, 'must be more than 0')
  }
  const b = c.login.brakes
  for (const k of ['ip', 'account'] as const) {
    if (b[k].refuseAfter < b[k].tarpitAfter) throw new ConfigError(`login.brakes.${k}.refuseAfter`, `must be at least tarpitAfter (${b[k].tarpitAfter})`)
  }
  if (!Object.hasOwn(c.policy.ruleSets, c.policy.defaultRuleSet)) {
    throw new ConfigError('policy.defaultRuleSet', `no rule set named ${c.policy.defaultRuleSet} in policy.ruleSets`)
  }
  const ids = new Set(c.backends.flatMap((b) => [b.id, ...(b.members ?? []).map((m) => m.id)]))
  c.listen.tcpTable.forEach((t, i) => {
    const key = `listen.tcpTable[${i}]`
    if (!parseMapName(t.map, (id) => ids.has(id))) throw new ConfigError(`${key}.map`, `unknown map ${t.map}`)
    claim(t.host, t.port, key)
  })
}

/**
 * Backend and member ids are one namespace (a member is named alone in local/<id> maps, health
 * records and URLs); mailHost names one backend each; a host has an address, a pool members and
 * none of its own, and the pool-only keys stay on pools.
 */
function checkBackends(backends: Config['backends']): void {
  const ids = new Map<string, string>()
  const hosts = new Map<string, string>()
  const claimId = (id: string, at: string, what: string) => {
    const other = ids.get(id)
    if (other !== undefined) throw new ConfigError(`${at}.id`, `duplicate id ${id} (already ${other})`)
    ids.set(id, what)
  }
  backends.forEach((b, i) => {
    const at = `backends[${i}]`
    claimId(b.id, at, `backend ${b.id}`)
    for (const h of [b.id, ...b.mailHosts]) {
      const other = hosts.get(h.toLowerCase())
      if (other !== undefined && other !== b.id) {
        throw new ConfigError(`${at}.mailHosts`, `${h} already names backend ${other}`)
      }
      hosts.set(h.toLowerCase(), b.id)
    }
    if (b.kind === 'host') {
      if (b.address === undefined) throw new ConfigError(`${at}.address`, 'required for a backend of kind host')
      if (isIP(b.address) === 0) throw new ConfigError(`${at}.address`, 'must be an IP address (proxies need IP literals)')
      for (const key of ['members', 'pinFor', 'director'] as const) {
        if (b[key] !== undefined) throw new ConfigError(`${at}.${key}`, 'only a backend of kind pool has it')
      }
      return
    }
    if (b.address !== undefined) throw new ConfigError(`${at}.address`, 'a pool has no address of its own: each member has one')
    if (b.members === undefined) throw new ConfigError(`${at}.members`, 'required for a backend of kind pool')
    if (b.pinFor !== undefined && toMs(b.pinFor) < MIN_PIN_FOR_MS) throw new ConfigError(`${at}.pinFor`, 'must be at least 5s: pins are refreshed in the store every second')
    if (b.director !== undefined && isIP(b.director.address) === 0) throw new ConfigError(`${at}.director.address`, 'must be an IP address (proxies need IP literals)')
    b.members.forEach((m, j) => {
      claimId(m.id, `${at}.members[${j}]`, `member of pool ${b.id}`)
      if (isIP(m.address) === 0) throw new ConfigError(`${at}.members[${j}].address`, 'must be an IP address (proxies need IP literals)')
    })
  })
  // A member id that is also a mailHost of a backend would make local/<id> and a route disagree.
  for (const b of backends) {
    for (const m of b.members ?? []) {
      const owner = hosts.get(m.id.toLowerCase())
      if (owner !== undefined) throw new ConfigError(`backends[${backends.indexOf(b)}].members`, `${m.id} already names backend ${owner}`)
    }
  }
}
