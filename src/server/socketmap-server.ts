// The socketmap listener: one port serves every map, named in each request.

import {
  SocketmapDecoder,
  encodeSocketmapReply,
  socketmapErrorReply,
  type SocketmapRequest,
} from '../protocols/socketmap.js'
import type { Wire } from './connection.js'
import { Listener } from './listener.js'
import type { LineServer, ServerOptions } from './options.js'

const socketmapWire: Wire<SocketmapRequest> = {
  protocol: 'socketmap',
  decoder: (maxRequestBytes) => new SocketmapDecoder(maxRequestBytes),
  target: (request) => request,
  encode: encodeSocketmapReply,
  errorReply: socketmapErrorReply,
}

export function createSocketmapServer(options: ServerOptions): LineServer {
  return new Listener(socketmapWire, options, options.logger.child({ listener: 'socketmap' }))
}
