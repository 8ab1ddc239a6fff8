// A closed set declared as a `const` array, as a TypeBox schema: one literal per value. Mapping
// the array with Type.Literal gives an array type, whose Static is `never`; the tuple type here
// keeps each value, so Static of the schema is the set's own union type.

import { Type, type TLiteral, type TUnion } from 'typebox'

type LiteralsOf<V extends readonly string[]> = { -readonly [K in keyof V]: TLiteral<V[K]> }

export function Literals<const V extends readonly string[]>(values: V, options?: Parameters<typeof Type.Union>[1]): TUnion<LiteralsOf<V>> {
  return Type.Union(values.map((v) => Type.Literal(v)), options) as TUnion<LiteralsOf<V>>
}
