export declare const ACTION_PATHS: string[]
export declare function copiedFiles(root: string): string[]
export declare function ownersIn(text: string): string[]
export declare function pinsIn(text: string): string[]
export declare function isCommit(ref: string): boolean
export declare function repin(text: string, commit: string): string
export declare function stalePins(
  texts: Iterable<readonly [string, string]>,
  wrong: (commit: string) => string | undefined,
): string[]
