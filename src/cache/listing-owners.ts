// Who owns each address, from a complete listing of the directory (the warm-up's bulk mode).
// A lookup asks the directory for the entries owning one address and refuses to guess when
// there are several (architecture.md §3.4); this gives the same verdict for every address at
// once, so the warm-up can cache the answers of a whole listing without a query each.
//
// It only vouches for what it can know as the server would: an address stored exactly in its
// canonical form, owned by one usable account entry and by no other entry of any kind, compared
// without case (the address attributes match case-insensitively; where one did not, this only
// sees more owners than the server, which sends the address down the normal path). Everything
// else (duplicates, unusable entries, addresses stored in another form) is left to a normal
// lookup, which answers or reports it as it always does.

import type { AccountEntry } from '../directory/directory.js'
import type { ListedEntry } from '../directory/mailbox-addresses.js'

/** Marks an address owned by more than one entry. */
const SEVERAL = Symbol('several owners')

export class ListingOwners {
  /** Lower-cased address -> id of its one owning entry, or SEVERAL. */
  readonly #owners = new Map<string, string | typeof SEVERAL>()
  /** Mailbox entries (as listed: a million of them are held until the end, so no copies). */
  readonly #mailboxes: ListedEntry[] = []
  #addressCount = 0

  /** Takes one page of the listing. */
  add(page: readonly ListedEntry[]): void {
    for (const listed of page) {
      for (const address of listed.addresses) {
        const lc = address.toLowerCase()
        const have = this.#owners.get(lc)
        if (have === undefined) this.#owners.set(lc, listed.id)
        else if (have !== listed.id) this.#owners.set(lc, SEVERAL)
      }
      if (!listed.mailbox) continue
      this.#mailboxes.push(listed)
      this.#addressCount += listed.addresses.length
    }
  }

  /** Addresses of the mailbox entries, counting one owned by several entries once per entry. */
  get mailboxAddresses(): number {
    return this.#addressCount
  }

  /**
   * Once the listing is complete: each mailbox address once (without case), in listing order,
   * with `sole` set to its account when that usable account alone owns it, else undefined
   * (resolve it the normal way). Consumes what it yields, so memory goes as it goes.
   */
  *addresses(): Generator<{ readonly address: string; readonly sole: AccountEntry | undefined }> {
    for (let i = 0; i < this.#mailboxes.length; i++) {
      const { id, entry, addresses } = this.#mailboxes[i]!
      for (const address of addresses) {
        const lc = address.toLowerCase()
        const owner = this.#owners.get(lc)
        // Gone: yielded already (another spelling, or another entry's copy of it).
        if (owner === undefined) continue
        this.#owners.delete(lc)
        yield { address, sole: owner === id && entry?.kind === 'account' ? entry : undefined }
      }
      this.#mailboxes[i] = EMPTY
    }
    this.#mailboxes.length = 0
    this.#owners.clear()
  }
}

const EMPTY: ListedEntry = { id: '', addresses: [], mailbox: true, entry: undefined }
