// The one table from directory.type to its driver. The built-in types are registered here; a
// test registers its own the same way (registerDirectoryDriver), and configuration validation
// reads this table, so a type nobody registered is refused naming directory.type.

import { ConfigError } from '../../errors.js'
import type { DirectoryDriver } from './driver.js'
import { ldapDriver } from './ldap.js'
import { sqlDriver } from './sql.js'

export type { AccountWrites, ChangeSink, ChangeWatcher, DirectoryDriver, DriverContext } from './driver.js'

const drivers = new Map<string, DirectoryDriver>()

/** Adds a directory type; its name must be new. */
export function registerDirectoryDriver(driver: DirectoryDriver): void {
  if (drivers.has(driver.name)) throw new Error(`directory type ${driver.name} is registered already`)
  drivers.set(driver.name, driver)
}

/** The driver of directory.type `type`; a ConfigError naming directory.type when there is none. */
export function directoryDriver(type: unknown): DirectoryDriver {
  const driver = typeof type === 'string' ? drivers.get(type) : undefined
  if (driver === undefined) {
    const known = [...drivers.keys()].sort().join(', ')
    throw new ConfigError('directory.type', `${typeof type === 'string' ? `unknown directory type ${type}` : 'must name a directory type'}: one of ${known}`)
  }
  return driver
}

registerDirectoryDriver(sqlDriver)
registerDirectoryDriver(ldapDriver)
