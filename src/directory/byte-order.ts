// The order the admin API promises for addresses and lists: bytes of the UTF-8 form, the same
// as PostgreSQL's "C" collation. JavaScript's default sort compares UTF-16 code units, which
// differs for characters beyond the Basic Multilingual Plane.

export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}
