export declare function releasedVersions(changelog: string): string[]
export declare function changelogSection(changelog: string, version: string): string | undefined
export interface ReleasePlan {
  problems: string[]
  tag?: string
  major?: string
  notes?: string
}
export declare function releasePlan(given: {
  version: string
  packageVersion: string
  changelog: string
  tags: readonly string[]
}): ReleasePlan
