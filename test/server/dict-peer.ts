// Speaking the dict protocol from Dovecot's side in listener tests: a FakeDict service, a dict
// listener on a socket in a fresh temp dir, a raw client on that socket, and reply parsing.

import { mkdtemp, rm } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'
import type { DictAnswer, DictService } from '../../src/login/types.js'
import { dictEscape, splitDictLine } from '../../src/protocols/dict.js'
import { createDictServer, type LineServer, type ListenerLimits } from '../../src/server/index.js'
import { Client } from './client.js'
import { capturingLogger, defaultLimits } from './flavors.js'

/** The handshake Dovecot 2.3.19 sends (captured in protocols.md §7). */
export const HELLO = 'H3\t2\t0\t\tmailhost\n'

/** A lookup line as Dovecot frames it. */
export const lookup = (key: string, user = key.slice(key.lastIndexOf('/') + 1)) => `L${dictEscape(key)}\t${dictEscape(user)}\n`

/** A value full of what the escaping must carry: TAB, LF, CR, \x01, a JSON escape, UTF-8. */
export const AWKWARD_VALUE = 'a\tb\nc\rd\x01e\\t "ü" 😀'

/**
 * Answers by key: `ghost` unknown, `down` fails, `boom` rejects, `awkward` finds AWKWARD_VALUE,
 * `sleep` after a short random delay; anything else is found as proxy fields naming the key.
 */
export async function answerByKey(key: string, user: string): Promise<DictAnswer> {
  if (key.includes('ghost')) return { kind: 'notfound' }
  if (key.includes('down')) return { kind: 'fail', reason: 'directory down:\tLDAP timeout\nafter 3 s' }
  if (key.includes('boom')) throw new Error('bug in the dict service')
  if (key.includes('awkward')) return { kind: 'found', value: AWKWARD_VALUE }
  if (key.includes('sleep')) await sleep(Math.random() * 5)
  return { kind: 'found', value: JSON.stringify({ proxy: 'y', host: '10.0.0.5', key, user }) }
}

/** An in-memory DictService: records calls, and can hold chosen keys until released. */
export class FakeDict implements DictService {
  readonly calls: { key: string; user: string }[] = []
  readonly #answer: (key: string, user: string) => DictAnswer | Promise<DictAnswer>
  readonly #held: (() => void)[] = []
  readonly #holdKeys = new Set<string>()

  constructor(answer: (key: string, user: string) => DictAnswer | Promise<DictAnswer> = answerByKey) {
    this.#answer = answer
  }

  hold(...keys: string[]): void {
    for (const k of keys) this.#holdKeys.add(k)
  }

  release(): void {
    this.#holdKeys.clear()
    for (const go of this.#held.splice(0)) go()
  }

  get waiting(): number {
    return this.#held.length
  }

  async lookup(key: string, user: string): Promise<DictAnswer> {
    this.calls.push({ key, user })
    if (this.#holdKeys.has(key)) await new Promise<void>((resolve) => this.#held.push(resolve))
    return this.#answer(key, user)
  }
}

export interface RunningDict {
  readonly server: LineServer
  /** The socket path. */
  readonly path: string
  /** The temp dir holding it (removed at teardown). */
  readonly dir: string
  readonly dict: FakeDict
  readonly logLines: () => Record<string, unknown>[]
}

/** A temp dir removed when the test ends; short, since socket paths are limited to 107 bytes. */
export async function tempDir(t: Test, prefix = 'mhd-dict-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** A dict listener on `<temp dir>/dict.sock`, closed when the test ends. */
export async function startDict(
  t: Test,
  options: { limits?: Partial<ListenerLimits>; mode?: number; dict?: FakeDict; path?: string } = {},
): Promise<RunningDict> {
  const dir = await tempDir(t)
  const path = options.path ?? join(dir, 'dict.sock')
  const dict = options.dict ?? new FakeDict()
  const { logger, lines } = capturingLogger()
  const server = createDictServer({ path, mode: options.mode ?? 0o660, dict, logger, limits: { ...defaultLimits, ...options.limits } })
  t.teardown(() => server.close(0))
  await server.listen()
  return { server, path, dir, dict, logLines: lines }
}

// Client's constructor is private because it only knows TCP; its reading helpers work on any
// stream socket, so the unix socket is handed to it directly.
const ClientOnSocket = Client as unknown as new (socket: Socket) => Client

/** A raw client on a unix socket, destroyed when the test ends. */
export function connectUnix(t: Test, path: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const s = connect({ path })
    s.once('error', reject)
    s.once('connect', () => {
      s.off('error', reject)
      const c = new ClientOnSocket(s)
      t.teardown(() => c.destroy())
      resolve(c)
    })
  })
}

export type Reply = { code: string; fields: string[] }

/** The next reply line: its code letter and its unescaped fields (the first without the code). */
export async function readReply(c: Client, timeoutMs?: number): Promise<Reply> {
  const line = await c.read((b) => {
    const i = b.indexOf(0x0a)
    return i < 0 ? -1 : i + 1
  }, timeoutMs)
  const fields = splitDictLine(line.subarray(0, -1).toString('utf8'))
  const first = fields[0] ?? ''
  return { code: first.slice(0, 1), fields: [first.slice(1), ...fields.slice(1)] }
}

/** The reply expected for answerByKey's found answer. */
export const foundFor = (key: string, user = key.slice(key.lastIndexOf('/') + 1)): Reply => ({
  code: 'O',
  fields: [JSON.stringify({ proxy: 'y', host: '10.0.0.5', key, user })],
})
