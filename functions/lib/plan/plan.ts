// The plan of a run: every image the selection keeps, where it goes on the
// target, cut into pages the workflow fans out over.

import { InvalidInputError } from '../errors.js';
import type { ListedPackage } from '../github/types.js';
import { selectVersions, type SelectionOptions } from '../selection/index.js';
import type { PlannedImage } from '../store/types.js';

export interface PlanTarget {
  /**
   * The path under which packages land on the target registry: package
   * NAME lands at `PATH/NAME`.
   * @default '' (NAME at the registry's root)
   */
  pathPrefix?: string;
}

/** The target repository of a package: `[PATH/]NAME`, lowercase. */
export function targetRepositoryOf(packageName: string,
  pathPrefix = ''): string {
  const path = pathPrefix.replace(/^\/+|\/+$/g, '');

  // a name with `/` keeps it: GHCR repositories nest the same way
  return (path === '' ? packageName : `${path}/${packageName}`)
    .toLowerCase();
}

/**
 * One planned image per selected version of every package, in listing
 * order, each with the tags the selection kept.
 */
export function buildPlan(packages: readonly ListedPackage[],
  selection: SelectionOptions, target: PlanTarget = {}): PlannedImage[] {
  return packages.flatMap((pkg) => {
    const targetRepository = targetRepositoryOf(pkg.name, target.pathPrefix);

    return selectVersions(pkg.versions, selection).map((version) => ({
      package: pkg.name,
      sourceRepository: pkg.repository.toLowerCase(),
      targetRepository,
      digest: version.digest,
      tags: version.tags,
    }));
  });
}

/** `items` cut into pages of `pageSize`, the last one possibly shorter. */
export function pagesOf<T>(items: readonly T[], pageSize: number): T[][] {
  if (!Number.isInteger(pageSize) || pageSize < 1) {
    throw new InvalidInputError(`a plan page size must be a positive `
      + `integer, not ${String(pageSize)}`);
  }

  const pages: T[][] = [];
  for (let start = 0; start < items.length; start += pageSize) {
    pages.push(items.slice(start, start + pageSize));
  }

  return pages;
}
