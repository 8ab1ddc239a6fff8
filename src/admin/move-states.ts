// A move's states, declared once: the moves service, the admin API's schema and the SQL that
// finds unfinished moves derive from these arrays; migration 0002's CHECK and its one-unfinished-
// move index, which cannot change once applied, are held to them by test/store/vocabulary.test.ts.

export const MOVE_STATES = ['pending', 'copying', 'copied', 'failed', 'completed', 'aborted'] as const
export type MoveState = (typeof MOVE_STATES)[number]
/** States in which the account counts as moving. */
export const UNFINISHED: readonly MoveState[] = ['pending', 'copying', 'copied', 'failed']
