// What the demo cluster's images are made of, for the tests that run their scripts on Debian 13
// (images.test.ts, cluster.test.ts): the Dockerfiles and the compose file read once, and the
// copies of an image's files and of the Debian 13 root's stock configuration the scripts run on.

import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, posix } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { parse as parseYaml } from 'yaml'
import { DEBIAN13 } from '../../scripts/peer-sets.mjs'
import { loadConfigFile } from '../../src/config/load.js'
import { DEBIAN13_SET as SET } from '../harness/peer-set.js'
import { aptInstalls, copies, dockerfileInstructions } from './parse.js'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const at = (...p: string[]) => join(ROOT, ...p)
export const read = (...p: string[]) => readFileSync(at(...p), 'utf8')

/** Where every demo image keeps the repository files it copies, under their repository paths. */
export const SHARE = '/usr/share/mailhostd'
export const IMAGES = ['dovecot-proxy', 'dovecot-backend', 'postfix', 'openldap'] as const
export type Image = (typeof IMAGES)[number]
export const dockerfile = (image: Image) => `docker/${image}/Dockerfile`
export const instructions = (image: Image) => dockerfileInstructions(read(dockerfile(image)))

interface Compose {
  services: Record<string, { environment?: Record<string, string>; networks?: Record<string, { ipv4_address?: string }> }>
  networks: Record<string, { ipam?: { config?: { subnet: string }[] } }>
}
export const compose = parseYaml(read('docker-compose.yml')) as Compose
export const env = (service: string) => compose.services[service]?.environment ?? {}
export const address = (service: string) => compose.services[service]?.networks?.cluster?.ipv4_address
export const dockerConfig = () => loadConfigFile(at('docker/mailhostd.yaml'), env('mailhostd'))

/** A temp dir under tmpdir(), which the peer set binds into its root; the caller removes it. */
export function makeDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `mailhostd-image-${prefix}-`))
  // Dovecot's and Postfix's unprivileged processes must reach the files below it.
  chmodSync(dir, 0o755)
  return dir
}

/** makeDir(), removed after the test. */
export function tempDir(t: Test, prefix: string): string {
  const dir = makeDir(prefix)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/**
 * The image's /usr/share/mailhostd, made in `dir` from its Dockerfile's COPY lines. Returns the
 * repository paths copied.
 */
export function imageShare(image: Image, dir: string): string[] {
  const copied: string[] = []
  for (const c of copies(instructions(image))) {
    for (const src of c.sources) {
      const placed = c.dest.endsWith('/') ? posix.join(c.dest, posix.basename(src)) : c.dest
      if (placed !== posix.join(SHARE, src)) throw new Error(`${dockerfile(image)}:${c.line}: ${src} goes to ${placed}, not ${posix.join(SHARE, src)}`)
      mkdirSync(dirname(join(dir, src)), { recursive: true })
      cpSync(at(src), join(dir, src), { recursive: true })
      copied.push(src)
    }
  }
  return copied
}

/**
 * A copy of the root's stock configuration directory `etc` (/etc/dovecot, /etc/postfix). Files
 * that Debian's ucf registry gives to a package of the root which the image does not install
 * (dovecot-lmtpd's 20-lmtp.conf on the proxy) are left out, as the image would not have them.
 * Symlinks are kept as they are: they point into the root, where they are read.
 */
export function stockEtc(image: Image, etc: string, dir: string): string {
  const copy = join(dir, posix.basename(etc))
  cpSync(SET.path(etc), copy, { recursive: true, verbatimSymlinks: true })
  const installed = new Set(aptInstalls(instructions(image)))
  for (const line of readFileSync(SET.path('/var/lib/ucf/registry'), 'utf8').split('\n')) {
    const [pkg, file] = line.split(/\s+/).filter(Boolean)
    if (!pkg || !file?.startsWith(`${etc}/`)) continue
    if (DEBIAN13.packages.includes(pkg) && !installed.has(pkg)) rmSync(join(copy, file.slice(etc.length + 1)), { force: true })
  }
  return copy
}
