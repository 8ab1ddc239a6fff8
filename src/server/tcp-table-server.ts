// A tcp_table listener. Requests carry no map name, so each listener serves the one map it was
// created for (one port per map).

import {
  TcpTableDecoder,
  encodeTcpTableReply,
  tcpTableErrorReply,
  type TcpTableRequest,
} from '../protocols/tcp-table.js'
import { Listener } from './listener.js'
import { lookupWire, type LookupCodec } from './lookup-wire.js'
import type { LineServer, ServerOptions } from './options.js'

export function createTcpTableServer(map: string, options: ServerOptions): LineServer {
  const codec: LookupCodec<TcpTableRequest> = {
    protocol: 'tcp_table',
    decoder: (maxRequestBytes) => new TcpTableDecoder(maxRequestBytes),
    target: (request) => ({ map, key: request.key }),
    encode: encodeTcpTableReply,
    errorReply: tcpTableErrorReply,
  }
  const log = options.logger.child({ listener: 'tcp_table', map })
  return new Listener(lookupWire(codec, options.lookup, log), options, log)
}
