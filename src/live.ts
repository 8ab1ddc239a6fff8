// A stable reference to whatever object a getter returns now. Listeners and routes are built once
// and keep what they were given for as long as they run; a configuration reload replaces the
// services behind them (a lookup service with a new deadline, a login router, token checks), and
// hands them `live(() => current)` so every call reaches the current one without a re-bind.

type Method = (...args: unknown[]) => unknown

export function live<T extends object>(current: () => T): T {
  // Methods bound to the current object, reused while it and the method stay the same: listeners
  // reach the lookup service through here on every request, and a bind() per call was garbage.
  let boundTo: object | undefined
  let bound = new Map<PropertyKey, { readonly method: Method; readonly bound: Method }>()
  return new Proxy({} as T, {
    get(_target, property) {
      const target = current()
      const value: unknown = Reflect.get(target, property, target)
      if (typeof value !== 'function') return value
      if (boundTo !== target) {
        boundTo = target
        bound = new Map()
      }
      const have = bound.get(property)
      if (have !== undefined && have.method === value) return have.bound
      // Methods run on the real object: private fields (#x) are not reachable through a proxy.
      const made = (value as Method).bind(target)
      bound.set(property, { method: value as Method, bound: made })
      return made
    },
    has: (_target, property) => Reflect.has(current(), property),
  })
}
