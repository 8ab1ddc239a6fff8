// Types for scripts/peer-sets.mjs (plain JavaScript: install-peers runs before any build).
export declare const PEER_CACHE: string
export declare const DEBIAN13: Readonly<{ id: 'debian13'; suite: string; root: string; packages: readonly string[] }>
export declare const STAMP: string
export declare function wantedStamp(set?: typeof DEBIAN13): { suite: string; packages: string[] }
export declare function readStamp(root?: string): { suite: string; packages: string[]; mirror?: string; builtAt?: string } | undefined
export declare function isCurrent(root?: string, set?: typeof DEBIAN13): boolean
export declare function packagesToAdd(root?: string, set?: typeof DEBIAN13): string[] | undefined
export declare function debianMirror(): string
