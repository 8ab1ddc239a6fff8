// Every codec the fuzzer drives, in report order. Listeners are driven separately (listeners/).

import { dictTarget } from './dict.js'
import { netstringTarget } from './netstring.js'
import { nginxHeaderTarget } from './nginx-header.js'
import { policyTarget } from './policy.js'
import { socketmapTarget } from './socketmap.js'
import { tcpTableTarget } from './tcp-table.js'
import type { CodecTarget } from './target.js'

export const CODECS: readonly CodecTarget[] = [netstringTarget, socketmapTarget, tcpTableTarget, policyTarget, dictTarget, nginxHeaderTarget]

export function codecByName(name: string): CodecTarget | undefined {
  return CODECS.find((c) => c.name === name)
}
