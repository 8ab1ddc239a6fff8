// The listeners' public surface.

export { createSocketmapServer } from './socketmap-server.js'
export { createTcpTableServer } from './tcp-table-server.js'
export { createPolicyServer } from './policy-server.js'
export type { ListenerLimits, LineServer, ListenerOptions, ServerOptions } from './options.js'
export { createDictServer, type DictServerOptions } from './dict-server.js'
