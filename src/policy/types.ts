// The policy delegation contract between the wire (src/protocols/policy.ts, the listener) and
// the decision engine (src/policy/engine.ts).

/**
 * One decoded request: attribute name to value, as Postfix sent them (protocols.md §3). A value
 * that was not valid UTF-8 is null, so no check can be fooled by a lossy decoding. When Postfix
 * repeats an attribute, the last value wins.
 */
export type PolicyRequest = ReadonlyMap<string, string | null>

export interface PolicyService {
  /**
   * The action for this request, without the `action=` prefix: `DUNNO`, `550 5.1.1 text`,
   * `DEFER_IF_PERMIT 4.3.0 text`, ... Meant never to reject.
   */
  decide(request: PolicyRequest): Promise<string>
}
