import { describe, expect, it } from 'vitest';

import {
  selectVersions, semverOfTag, subjectOfTag,
  type SelectionOptions, type TaggedVersion,
} from '../functions/lib/selection/index.js';

/** The hex of a readable digest: `hex('a')` is 64 a's. */
function hex(letter: string): string {
  return letter.repeat(64);
}

/** A readable digest: `digest('a')` is sha256:aaaa... */
function digest(letter: string): string {
  return `sha256:${hex(letter)}`;
}

/** A tag naming the digest of `letter`, with a suffix. */
function digestTag(letter: string, suffix = ''): string {
  return `sha256-${hex(letter)}${suffix}`;
}

interface Row {
  name: string;
  /** Versions by digest letter, in listing order. */
  versions: [string, string[]][];
  options?: SelectionOptions;
  /** Selected versions by digest letter, in listing order. */
  selected: [string, string[]][];
}

function check(row: Row): void {
  const versions: TaggedVersion[] = row.versions
    .map(([letter, tags]) => ({ digest: digest(letter), tags }));

  const selected = selectVersions(versions, row.options);

  expect(selected).toEqual(row.selected
    .map(([letter, tags]) => ({ digest: digest(letter), tags })));
}

describe('selectVersions', () => {
  describe('rule 1: the highest semver of each major.minor line', () => {
    const rows: Row[] = [
      { name: 'keeps only the highest patch of a line',
        versions: [['a', ['1.2.0']], ['b', ['1.2.1']], ['c', ['1.2.3']]],
        selected: [['c', ['1.2.3']]] },
      { name: 'keeps one version per line, lines apart',
        versions: [['a', ['1.2.3']], ['b', ['1.3.0']], ['c', ['2.0.0']],
          ['d', ['1.3.1']]],
        selected: [['a', ['1.2.3']], ['c', ['2.0.0']], ['d', ['1.3.1']]] },
      { name: 'orders numerically, not as text',
        versions: [['a', ['1.2.9']], ['b', ['1.2.10']]],
        selected: [['b', ['1.2.10']]] },
      { name: 'reads a leading v as part of the same line',
        versions: [['a', ['v1.2.3']], ['b', ['1.2.4']], ['c', ['v1.2.5']]],
        selected: [['c', ['v1.2.5']]] },
      { name: 'drops a pre-release below its release',
        versions: [['a', ['2.0.0-rc.1']], ['b', ['2.0.0']]],
        selected: [['b', ['2.0.0']]] },
      { name: 'keeps a lone pre-release',
        versions: [['a', ['2.1.0-rc.1']]],
        selected: [['a', ['2.1.0-rc.1']]] },
      { name: 'orders pre-releases among themselves',
        versions: [['a', ['2.1.0-beta']], ['b', ['2.1.0-rc.2']],
          ['c', ['2.1.0-rc.1']], ['d', ['2.1.0-rc.10']]],
        selected: [['d', ['2.1.0-rc.10']]] },
      { name: 'lets a pre-release of the next patch outrank a release, '
          + 'as semver orders them',
        versions: [['a', ['2.0.0']], ['b', ['2.0.1-rc.1']]],
        selected: [['b', ['2.0.1-rc.1']]] },
      { name: 'ignores build metadata when ordering',
        versions: [['a', ['1.2.2']], ['b', ['1.2.3+build.7']]],
        selected: [['b', ['1.2.3+build.7']]] },
      { name: 'keeps every build of the highest version',
        versions: [['a', ['1.2.3+a']], ['b', ['1.2.3+b']]],
        selected: [['a', ['1.2.3+a']], ['b', ['1.2.3+b']]] },
      { name: 'keeps v1.2.3 and 1.2.3 on different digests: a tie',
        versions: [['a', ['v1.2.3']], ['b', ['1.2.3']], ['c', ['1.2.2']]],
        selected: [['a', ['v1.2.3']], ['b', ['1.2.3']]] },
      { name: 'keeps v1.2.3 and 1.2.3 on one digest',
        versions: [['a', ['1.2.3', 'v1.2.3', 'v1.2.2']]],
        selected: [['a', ['1.2.3', 'v1.2.3']]] },
      { name: 'judges each tag of a version in its own line',
        versions: [['a', ['1.2.3', '1.3.0']], ['b', ['1.3.1']]],
        selected: [['a', ['1.2.3']], ['b', ['1.3.1']]] },
      { name: 'drops a version whose only tags are thinned',
        versions: [['a', ['1.2.0', '1.2.1']], ['b', ['1.2.2']]],
        selected: [['b', ['1.2.2']]] },
      { name: 'keeps the other tags of a version that lost its semver tag',
        versions: [['a', ['1.2.0', 'stable']], ['b', ['1.2.1']]],
        selected: [['a', ['stable']], ['b', ['1.2.1']]] },
    ];

    it.each(rows)('$name', check);
  });

  describe('rule 2: every tag that is not semver is kept', () => {
    const rows: Row[] = [
      { name: 'keeps names, branches, short versions and commit tags',
        versions: [['a', ['latest', 'main']], ['b', ['1.2', '1']],
          ['c', ['sha-1a2b3c4']]],
        selected: [['a', ['latest', 'main']], ['b', ['1.2', '1']],
          ['c', ['sha-1a2b3c4']]] },
      { name: 'keeps tags that only look like versions',
        versions: [['a', ['V1.2.3']], ['b', ['01.2.3']], ['c', ['1.2.3.4']],
          ['d', ['vv1.2.3']], ['e', ['1.2.3-01']]],
        selected: [['a', ['V1.2.3']], ['b', ['01.2.3']], ['c', ['1.2.3.4']],
          ['d', ['vv1.2.3']], ['e', ['1.2.3-01']]] },
      { name: 'does not thin a non-semver tag against semver tags',
        versions: [['a', ['1.2']], ['b', ['1.2.0']], ['c', ['1.2.1']]],
        selected: [['a', ['1.2']], ['c', ['1.2.1']]] },
    ];

    it.each(rows)('$name', check);
  });

  describe('rule 3: digest tags follow the version they name', () => {
    const rows: Row[] = [
      { name: 'keeps signatures, attestations and SBOMs of a kept version',
        versions: [['a', ['latest']],
          ['s', [digestTag('a', '.sig')]],
          ['t', [digestTag('a', '.att')]],
          ['u', [digestTag('a', '.sbom')]]],
        selected: [['a', ['latest']], ['s', [digestTag('a', '.sig')]],
          ['t', [digestTag('a', '.att')]], ['u', [digestTag('a', '.sbom')]]] },
      { name: 'keeps a referrers fallback tag with no suffix',
        versions: [['a', ['1.0.0']], ['r', [digestTag('a')]]],
        selected: [['a', ['1.0.0']], ['r', [digestTag('a')]]] },
      { name: 'keeps a digest tag with any suffix',
        versions: [['a', ['main']], ['r', [digestTag('a', '.whatever-1')]]],
        selected: [['a', ['main']], ['r', [digestTag('a', '.whatever-1')]]] },
      { name: 'drops the signature of a version whose tags were thinned',
        versions: [['a', ['1.2.0']], ['b', ['1.2.1']],
          ['s', [digestTag('a', '.sig')]], ['t', [digestTag('b', '.sig')]]],
        selected: [['b', ['1.2.1']], ['t', [digestTag('b', '.sig')]]] },
      { name: 'drops the signature of an untagged version',
        versions: [['a', []], ['s', [digestTag('a', '.sig')]]],
        selected: [] },
      { name: 'drops the signature of a digest not listed',
        versions: [['s', [digestTag('f', '.sig')]]],
        selected: [] },
      { name: 'keeps the signature of a kept signature, to a fixed point',
        versions: [['t', [digestTag('s', '.sig')]],
          ['s', [digestTag('a', '.att')]], ['a', ['latest']]],
        selected: [['t', [digestTag('s', '.sig')]],
          ['s', [digestTag('a', '.att')]], ['a', ['latest']]] },
      { name: 'keeps a digest tag on a version that also has a kept tag',
        versions: [['a', ['latest']], ['s', ['sig-latest',
          digestTag('a', '.sig')]]],
        selected: [['a', ['latest']], ['s', ['sig-latest',
          digestTag('a', '.sig')]]] },
      { name: 'reads uppercase hex as an ordinary tag, kept',
        versions: [['a', [`sha256-${'A'.repeat(64)}.sig`]]],
        selected: [['a', [`sha256-${'A'.repeat(64)}.sig`]]] },
      { name: 'reads 63 or 65 hex digits as an ordinary tag, kept',
        versions: [['a', [`sha256-${'a'.repeat(63)}`]],
          ['b', [`sha256-${'b'.repeat(65)}`]]],
        selected: [['a', [`sha256-${'a'.repeat(63)}`]],
          ['b', [`sha256-${'b'.repeat(65)}`]]] },
    ];

    it.each(rows)('$name', check);
  });

  describe('rule 4: untagged versions are not selected on their own', () => {
    const rows: Row[] = [
      { name: 'leaves out an untagged version',
        versions: [['a', ['latest']], ['b', []], ['c', []]],
        selected: [['a', ['latest']]] },
      { name: 'selects nothing from an empty listing',
        versions: [],
        selected: [] },
    ];

    it.each(rows)('$name', check);
  });

  describe('excludeTags', () => {
    const rows: Row[] = [
      { name: 'applies before thinning: an excluded release lets its '
          + 'pre-release win',
        versions: [['a', ['2.0.0-rc.1']], ['b', ['2.0.0']]],
        options: { excludeTags: /^2\.0\.0$/ },
        selected: [['a', ['2.0.0-rc.1']]] },
      { name: 'drops matching ordinary tags, unanchored',
        versions: [['a', ['latest', 'nightly-2024-01-01']],
          ['b', ['pr-12-nightly']]],
        options: { excludeTags: /nightly/ },
        selected: [['a', ['latest']]] },
      { name: 'drops the signatures of a version whose tags are all '
          + 'excluded',
        versions: [['a', ['dev']], ['s', [digestTag('a', '.sig')]]],
        options: { excludeTags: /^dev$/ },
        selected: [] },
      { name: 'can exclude digest tags themselves',
        versions: [['a', ['latest']], ['s', [digestTag('a', '.sig')]],
          ['t', [digestTag('a', '.att')]]],
        options: { excludeTags: /\.att$/ },
        selected: [['a', ['latest']], ['s', [digestTag('a', '.sig')]]] },
      { name: 'gives the same answer for every tag with a global RegExp',
        versions: [['a', ['tmp-1']], ['b', ['tmp-2']], ['c', ['keep']]],
        options: { excludeTags: /^tmp-/g },
        selected: [['c', ['keep']]] },
    ];

    it.each(rows)('$name', check);
  });

  describe('allVersions', () => {
    const rows: Row[] = [
      { name: 'keeps every semver tag',
        versions: [['a', ['1.2.0']], ['b', ['1.2.1-rc.1']], ['c', ['1.2.1']],
          ['d', []]],
        options: { allVersions: true },
        selected: [['a', ['1.2.0']], ['b', ['1.2.1-rc.1']],
          ['c', ['1.2.1']]] },
      { name: 'still drops signatures of untagged versions and excluded tags',
        versions: [['a', ['1.2.0', 'tmp']], ['b', []],
          ['s', [digestTag('b', '.sig')]], ['t', [digestTag('a', '.sig')]]],
        options: { allVersions: true, excludeTags: /^tmp$/ },
        selected: [['a', ['1.2.0']], ['t', [digestTag('a', '.sig')]]] },
    ];

    it.each(rows)('$name', check);
  });

  describe('listings read while a tag moved', () => {
    it('judges a tag listed on two versions on the first one only', () => {
      check({ name: '',
        versions: [['a', ['latest']], ['b', ['latest', '1.0.0']]],
        selected: [['a', ['latest']], ['b', ['1.0.0']]] });
    });
  });

  it('does not change the versions it is given', () => {
    const versions = [{ digest: digest('a'), tags: ['1.0.0', '1.0.1'] }];
    const before = structuredClone(versions);

    selectVersions(versions);

    expect(versions).toEqual(before);
  });
});

describe('semverOfTag', () => {
  it.each([
    ['1.2.3', '1.2.3'], ['v1.2.3', '1.2.3'], ['1.2.3-rc.1', '1.2.3-rc.1'],
    ['1.2.3+build', '1.2.3'], ['1.2', undefined], ['V1.2.3', undefined],
    [' 1.2.3', undefined], ['=1.2.3', undefined], ['latest', undefined],
    ['9007199254740993.0.0', undefined],
  ])('reads %j as %j', (tag, version) => {
    expect(semverOfTag(tag)?.version).toBe(version);
  });
});

describe('subjectOfTag', () => {
  it.each([
    [digestTag('a'), digest('a')],
    [digestTag('a', '.sig'), digest('a')],
    [digestTag('a', '-attestation'), digest('a')],
    [`sha256-${'A'.repeat(64)}`, undefined],
    [`sha512-${'a'.repeat(64)}`, undefined],
    [`sha256-${'a'.repeat(65)}`, undefined],
    [`xsha256-${'a'.repeat(64)}`, undefined],
    ['latest', undefined],
  ])('reads %j as naming %j', (tag, subject) => {
    expect(subjectOfTag(tag)).toBe(subject);
  });
});
