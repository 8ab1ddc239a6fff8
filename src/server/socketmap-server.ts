// The socketmap listener: one port serves every map, named in each request.

import {
  SocketmapDecoder,
  encodeSocketmapReply,
  socketmapErrorReply,
  type SocketmapRequest,
} from '../protocols/socketmap.js'
import { Listener } from './listener.js'
import { lookupWire, type LookupCodec } from './lookup-wire.js'
import type { LineServer, ServerOptions } from './options.js'

const socketmapCodec: LookupCodec<SocketmapRequest> = {
  protocol: 'socketmap',
  decoder: (maxRequestBytes) => new SocketmapDecoder(maxRequestBytes),
  target: (request) => request,
  encode: encodeSocketmapReply,
  errorReply: socketmapErrorReply,
}

export function createSocketmapServer(options: ServerOptions): LineServer {
  const log = options.logger.child({ listener: 'socketmap' })
  return new Listener(lookupWire(socketmapCodec, options.lookup, log), options, log)
}
