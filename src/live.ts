// A stable reference to whatever object a getter returns now. Listeners and routes are built once
// and keep what they were given for as long as they run; a configuration reload replaces the
// services behind them (a lookup service with a new deadline, a login router, token checks), and
// hands them `live(() => current)` so every call reaches the current one without a re-bind.

export function live<T extends object>(current: () => T): T {
  return new Proxy({} as T, {
    get(_target, property) {
      const target = current()
      const value: unknown = Reflect.get(target, property, target)
      // Methods run on the real object: private fields (#x) are not reachable through a proxy.
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
    has: (_target, property) => Reflect.has(current(), property),
  })
}
