// The peer comparison: Postfix's native ldap: table against mailhostd's socketmap, both asked
// by the same program the same way (`postmap -q - MAP < keys`: one process, one connection,
// one key at a time) over the same keys and the same slapd. Warm: each map is asked the whole
// list once untimed first, so slapd has the entries in its cache and mailhostd in its own.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { postmapBatch, socketmap } from '../test/harness/mailhostd.js'
import type { Slapd } from '../test/harness/slapd.js'

const TEMPLATE = fileURLToPath(new URL('./ldap-recipient.cf', import.meta.url))

export interface PostmapRun {
  readonly keys: number
  readonly found: number
  readonly ms: number
  readonly keysPerSecond: number
}

export interface PeerResult {
  readonly ldap: PostmapRun
  readonly mailhostd: PostmapRun
  /** Keys whose answers differed between the two maps (must be 0). */
  readonly disagreements: number
}

/** The ldap_table(5) file for this slapd, written into a temp dir the caller removes. */
export function writeLdapCf(dir: string, slapd: Slapd): string {
  const values: Record<string, string> = { URL: slapd.url, BIND_DN: slapd.bindDN, BIND_PW: slapd.bindPassword, BASE_DN: slapd.baseDN }
  const text = readFileSync(TEMPLATE, 'utf8').replace(/@@([A-Z_]+)@@/g, (_, k: string) => {
    if (values[k] === undefined) throw new Error(`ldap-recipient.cf: no value for @@${k}@@`)
    return values[k]
  })
  const file = join(dir, 'ldap-recipient.cf')
  writeFileSync(file, text, { mode: 0o600 })
  return file
}

const ROUNDS = 3

interface Timed {
  readonly run: PostmapRun
  readonly answers: Map<string, string>
}

const median = (runs: Timed[]): Timed => [...runs].sort((x, y) => x.run.ms - y.run.ms)[Math.floor(runs.length / 2)]!

async function timedPostmap(map: string, keys: readonly string[]): Promise<Timed> {
  const t0 = performance.now()
  const r = await postmapBatch(map, keys)
  const ms = performance.now() - t0
  // postmap exits 1 when the last key was not found; only a lookup error is a failure.
  if (r.code > 1 || /error|fatal/i.test(r.stderr)) throw new Error(`postmap -q - ${map.split(':')[0]}: ${r.stderr.trim()}`)
  const answers = new Map<string, string>()
  for (const line of r.stdout.split('\n')) {
    const tab = line.indexOf('\t')
    if (tab > 0) answers.set(line.slice(0, tab), line.slice(tab + 1))
  }
  return { run: { keys: keys.length, found: answers.size, ms, keysPerSecond: keys.length / (ms / 1000) }, answers }
}

export async function comparePeer(slapd: Slapd, socketmapPort: number, keys: readonly string[]): Promise<PeerResult> {
  const dir = mkdtempSync(join(tmpdir(), 'mailhostd-bench-peer-'))
  try {
    const ldapMap = `ldap:${writeLdapCf(dir, slapd)}`
    const ours = socketmap(socketmapPort, 'recipient')
    // Warm both, then time both ROUNDS times, alternating so neither always runs in a quieter
    // moment of a shared machine; each side's median round is reported.
    await timedPostmap(ldapMap, keys)
    await timedPostmap(ours, keys)
    const ldap: Timed[] = []
    const mailhostd: Timed[] = []
    for (let i = 0; i < ROUNDS; i++) {
      ldap.push(await timedPostmap(ldapMap, keys))
      mailhostd.push(await timedPostmap(ours, keys))
    }
    const a = median(ldap)
    const b = median(mailhostd)
    let disagreements = 0
    for (const k of keys) if (a.answers.get(k) !== b.answers.get(k)) disagreements++
    return { ldap: a.run, mailhostd: b.run, disagreements }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
