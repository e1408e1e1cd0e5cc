// What the backup holds, run after run: per package, the tags it has
// copied. A tag deleted from the source stays in the backup and in the
// inventory, and is reported as gone from the source on every run.

import type { ListedPackage } from '../github/types.js';
import { withoutState } from '../pattern.js';
import type { PlannedImage } from '../store/types.js';

/** An inventory: package name -> tags backed up. */
export type Inventory = ReadonlyMap<string, readonly string[]>;

/** Tags of one package that the backup holds and the source no longer. */
export interface GoneFromSource {
  package: string;
  /** Sorted. Every inventory tag of the package when it is gone whole. */
  tags: string[];
  /** The whole package is gone from the source. */
  packageGone: boolean;
}

export interface GoneOptions {
  /**
   * The package filter the listing was made with: packages of the
   * inventory it does not match were not listed, so are not judged.
   */
  packages?: RegExp;
}

/**
 * Tags (and whole packages) of `inventory` that the source `listing` no
 * longer has, judged against every tag in the source, selected or not: a
 * tag thinned out by the policy is still in the source. Sorted by package.
 */
export function goneFromSource(inventory: Inventory,
  listing: readonly ListedPackage[],
  options: GoneOptions = {}): GoneFromSource[] {
  const filter = options.packages && withoutState(options.packages);
  const sourceTags = new Map(listing.map((pkg) =>
    [pkg.name, new Set(pkg.versions.flatMap((version) => version.tags))]));
  const gone: GoneFromSource[] = [];

  for (const [name, tags] of inventory) {
    if (filter !== undefined && !filter.test(name)) continue;

    const present = sourceTags.get(name);
    if (present === undefined) {
      gone.push({ package: name, tags: [...tags].sort(), packageGone: true });
      continue;
    }

    const missing = tags.filter((tag) => !present.has(tag));
    if (missing.length > 0) {
      gone.push({ package: name, tags: [...missing].sort(),
        packageGone: false });
    }
  }

  return gone.sort((a, b) => compareText(a.package, b.package));
}

/**
 * The inventory after a run that planned `images`: what it held before
 * and every tag planned now, so tags gone from the source stay listed.
 * Packages and tags sorted, for stable records.
 */
export function nextInventory(previous: Inventory,
  images: readonly PlannedImage[]): Map<string, string[]> {
  const union = new Map<string, Set<string>>();
  for (const [name, tags] of previous) union.set(name, new Set(tags));
  for (const image of images) {
    const tags = union.get(image.package) ?? new Set<string>();
    for (const tag of image.tags) tags.add(tag);
    union.set(image.package, tags);
  }

  return new Map([...union.keys()].sort(compareText)
    .map((name) => [name, [...(union.get(name) ?? [])].sort()]));
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
