// live(): a stable reference whose every call reaches the object its getter returns now.

import t from 'tap'
import { live } from '../../src/live.js'

class Service {
  readonly #name: string
  value = 1
  constructor(name: string) {
    this.#name = name
  }
  name = (): string => this.#name
  greet(): string {
    return `hello ${this.#name}`
  }
}

t.test('calls reach the current object, private fields included, across replacements', async (t) => {
  let current = new Service('a')
  const ref = live(() => current)
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const held = ref.greet
  t.equal(ref.name(), 'a')
  t.equal(ref.greet(), 'hello a', 'methods of the class reach its private fields')
  t.equal(ref.value, 1)
  current = new Service('b')
  t.equal(ref.name(), 'b', 'a replaced object is reached at once')
  t.equal(ref.greet(), 'hello b')
  t.equal(held(), 'hello a', 'a method taken earlier stays bound to the object it was taken from')
  current.value = 2
  t.equal(ref.value, 2, 'plain properties are read live')
  // eslint-disable-next-line @typescript-eslint/unbound-method
  t.equal(ref.greet, ref.greet, 'the same method of the same object is one bound function')
  current.greet = () => 'own'
  t.equal(ref.greet(), 'own', 'a method replaced on the object itself is seen')
  t.ok('value' in ref)
})
