// The default selection policy: which versions of a package, and which of
// their tags, a backup copies. A pure function of the listed versions and
// the options.
//
// 1. A semver tag (a leading `v` allowed) belongs to the line of its
//    major.minor; of each line only the highest version is kept, in semver
//    order, where a pre-release sorts below its release. Tags of equal
//    precedence (`v1.2.3` and `1.2.3`, or builds `+a` and `+b`) are all
//    kept, on whatever digests they point at.
// 2. Every tag that is not semver is kept.
// 3. A tag `sha256-<64 hex>[suffix]` is kept exactly when the digest it
//    names is a kept version, including a version kept only by such a tag
//    (the signature of an attestation).
// 4. An untagged version is not selected on its own; it travels as a child
//    of an index that references it.
//
// Excluded tags are taken out before anything else: an excluded release
// lets its pre-release be the highest of its line, and a version whose only
// tags are excluded is not kept, nor are its signatures.
// A tag listed on two versions (a listing read while the tag moved) is
// judged once, on the first version that lists it: GitHub lists the newest
// version first.

import { compare, type SemVer } from 'semver';

import { withoutState } from '../pattern.js';
import { semverOfTag, subjectOfTag } from './tags.js';

/** A version as the listing gives it; only its digest and tags matter. */
export interface TaggedVersion {
  digest: string;
  tags: readonly string[];
}

export interface SelectionOptions {
  /** Tags never selected, matched unanchored, before any other rule. */
  excludeTags?: RegExp;
  /**
   * Keep every semver tag instead of the highest of each line; rules 2 to
   * 4 and excludeTags still apply.
   * @default false
   */
  allVersions?: boolean;
}

/** A version the backup copies, with the tags to give it. */
export interface SelectedVersion {
  digest: string;
  tags: string[];
}

interface Candidate {
  /** Index of the version in the input. */
  version: number;
  tag: string;
  semver?: SemVer;
  subject?: string;
}

/** The versions to copy and their tags, in the order listed. */
export function selectVersions(versions: readonly TaggedVersion[],
  options: SelectionOptions = {}): SelectedVersion[] {
  const exclude = options.excludeTags && withoutState(options.excludeTags);
  const candidates: Candidate[] = [];
  const seen = new Set<string>();

  for (const [version, { tags }] of versions.entries()) {
    for (const tag of tags) {
      if (seen.has(tag) || exclude?.test(tag)) continue;

      seen.add(tag);
      const subject = subjectOfTag(tag);
      candidates.push(subject === undefined
        ? { version, tag, semver: semverOfTag(tag) }
        : { version, tag, subject });
    }
  }

  const kept = new Set<Candidate>();

  // rules 1 and 2: semver tags thinned per line, every other tag kept
  const highest = new Map<string, SemVer>();
  for (const candidate of candidates) {
    const version = candidate.semver;
    if (version === undefined) continue;

    const line = `${version.major}.${version.minor}`;
    const best = highest.get(line);
    if (best === undefined || compare(version, best) > 0) {
      highest.set(line, version);
    }
  }
  for (const candidate of candidates) {
    if (candidate.subject !== undefined) continue;

    const version = candidate.semver;
    const best = version && highest.get(`${version.major}.${version.minor}`);
    if (version === undefined || options.allVersions
      || (best !== undefined && compare(version, best) === 0)) {
      kept.add(candidate);
    }
  }

  // rule 3, to a fixed point: a kept signature keeps what signs it in turn
  const keptDigests = new Set([...kept]
    .map((candidate) => versions[candidate.version]?.digest));
  let pending = candidates.filter((candidate) =>
    candidate.subject !== undefined);
  let changed = true;
  while (changed) {
    changed = false;
    pending = pending.filter((candidate) => {
      if (!keptDigests.has(candidate.subject)) return true;

      kept.add(candidate);
      keptDigests.add(versions[candidate.version]?.digest);
      changed = true;

      return false;
    });
  }

  // rule 4 falls out: a version with no kept tag is not selected
  const selected = new Map<number, string[]>();
  for (const candidate of candidates) {
    if (!kept.has(candidate)) continue;

    const tags = selected.get(candidate.version) ?? [];
    tags.push(candidate.tag);
    selected.set(candidate.version, tags);
  }

  return [...selected.keys()].sort((a, b) => a - b).map((index) => ({
    digest: (versions[index] as TaggedVersion).digest,
    tags: selected.get(index) as string[],
  }));
}
