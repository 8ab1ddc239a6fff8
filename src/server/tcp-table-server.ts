// A tcp_table listener. Requests carry no map name, so each listener serves the one map it was
// created for (one port per map).

import {
  TcpTableDecoder,
  encodeTcpTableReply,
  tcpTableErrorReply,
  type TcpTableRequest,
} from '../protocols/tcp-table.js'
import type { Wire } from './connection.js'
import { Listener } from './listener.js'
import type { LineServer, ServerOptions } from './options.js'

export function createTcpTableServer(map: string, options: ServerOptions): LineServer {
  const wire: Wire<TcpTableRequest> = {
    protocol: 'tcp_table',
    decoder: (maxRequestBytes) => new TcpTableDecoder(maxRequestBytes),
    target: (request) => ({ map, key: request.key }),
    encode: encodeTcpTableReply,
    errorReply: tcpTableErrorReply,
  }
  return new Listener(wire, options, options.logger.child({ listener: 'tcp_table', map }))
}
