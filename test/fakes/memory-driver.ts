// A directory type for tests only, registered in the driver table exactly as ldap and sql are:
// `directory: { type: memory, name: <n> }` serves the MemoryDirectory a test put under that name
// with useMemoryDirectory(). It shows that a directory type is one driver and one config variant.

import { Type } from 'typebox'
import { defineDirectoryDriver } from '../../src/directory/drivers/driver.js'
import { registerDirectoryDriver } from '../../src/directory/drivers/index.js'
import type { MemoryDirectory } from './memory-directory.js'

const directories = new Map<string, MemoryDirectory>()

/** Serves `directory` to daemons configured with `directory: { type: memory, name }`. */
export function useMemoryDirectory(name: string, directory: MemoryDirectory): void {
  directories.set(name, directory)
}

function named(name: string): MemoryDirectory {
  const directory = directories.get(name)
  if (directory === undefined) throw new Error(`no memory directory named ${name}: call useMemoryDirectory first`)
  return directory
}

export const MemoryDirectoryConfig = Type.Object(
  { type: Type.Literal('memory'), name: Type.String({ minLength: 1, default: 'default' }) },
  { additionalProperties: false },
)

export const MEMORY_READ_ONLY = 'the memory directory is read-only'

export const memoryDriver = defineDirectoryDriver({
  name: 'memory',
  config: MemoryDirectoryConfig,
  lookups: ({ name }) => named(name),
  mailboxAddresses: ({ name }) => ({
    each: async (onPage) => onPage(named(name).mailboxAddresses()),
    close: async () => undefined,
  }),
  accountWrites: () => ({ writer: undefined, terms: { passwordScheme: 'ARGON2ID', intentGraceMs: 0, readOnly: MEMORY_READ_ONLY } }),
  watcher: () => undefined,
})

registerDirectoryDriver(memoryDriver)
