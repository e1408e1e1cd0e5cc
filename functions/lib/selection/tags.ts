// What kind of tag a tag is: a semantic version, a tag naming a digest
// (cosign signatures and attestations, OCI referrers fallback tags), or an
// ordinary tag.

import { SemVer, parse } from 'semver';

/**
 * The semantic version a tag spells, a leading `v` allowed, or undefined.
 * Strict: `1.2`, `V1.2.3` and `01.2.3` are not semantic versions.
 */
export function semverOfTag(tag: string): SemVer | undefined {
  // semver's parser trims spaces; a tag is taken exactly as written
  if (!/^v?\d/.test(tag)) return undefined;

  return parse(tag, { loose: false }) ?? undefined;
}

/**
 * `sha256-` and 64 lowercase hex digits, then anything that does not go on
 * with hex (`.sig`, `.att`, `.sbom`, nothing). Digests are lowercase, so an
 * uppercase one names no digest and the tag is an ordinary tag.
 */
const DIGEST_TAG = /^sha256-([0-9a-f]{64})(?![0-9a-fA-F])/;

/** The digest (`sha256:...`) a tag names, or undefined. */
export function subjectOfTag(tag: string): string | undefined {
  const match = DIGEST_TAG.exec(tag);

  return match === null ? undefined : `sha256:${match[1]}`;
}
