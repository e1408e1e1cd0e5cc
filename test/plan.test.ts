import { describe, expect, it } from 'vitest';

import type { ListedPackage } from '../functions/lib/github/index.js';
import {
  buildPlan, goneFromSource, nextInventory, pagesOf, targetRepositoryOf,
} from '../functions/lib/plan/index.js';

function digest(letter: string): string {
  return `sha256:${letter.repeat(64)}`;
}

/** A listed package from digest letters and their tags. */
function listed(name: string, versions: [string, string[]][],
  owner = 'acme'): ListedPackage {
  return {
    name, visibility: 'public',
    repository: `${owner}/${name}`.toLowerCase(),
    versions: versions.map(([letter, tags], id) => ({
      id, digest: digest(letter), tags,
      createdAt: '2024-01-01T00:00:00Z', updatedAt: '2024-01-01T00:00:00Z',
    })),
  };
}

describe('targetRepositoryOf', () => {
  it.each([
    ['web', '', 'web'],
    ['web', 'backup', 'backup/web'],
    ['web', '/backup/ghcr/', 'backup/ghcr/web'],
    ['team/api', 'backup', 'backup/team/api'],
    ['Team/API', 'Backup', 'backup/team/api'],
  ])('puts package %j under %j at %j', (name, prefix, repository) => {
    expect(targetRepositoryOf(name, prefix)).toBe(repository);
  });
});

describe('buildPlan', () => {
  it('plans every selected version of every package at PATH/NAME:TAG',
    () => {
      const packages = [
        listed('web', [['a', ['latest', '1.2.3']], ['b', ['1.2.2']],
          ['c', []]]),
        listed('Team/API', [['d', ['main']]], 'Acme'),
      ];

      const plan = buildPlan(packages, {}, { pathPrefix: 'backup' });

      expect(plan).toEqual([
        { package: 'web', sourceRepository: 'acme/web',
          targetRepository: 'backup/web', digest: digest('a'),
          tags: ['latest', '1.2.3'] },
        { package: 'Team/API', sourceRepository: 'acme/team/api',
          targetRepository: 'backup/team/api', digest: digest('d'),
          tags: ['main'] },
      ]);
    });

  it('passes the selection options on to the policy', () => {
    const packages = [listed('web', [['a', ['1.2.3']], ['b', ['1.2.2']],
      ['c', ['tmp']]])];

    const plan = buildPlan(packages,
      { allVersions: true, excludeTags: /^tmp$/ });

    expect(plan.map((image) => [image.targetRepository, image.tags]))
      .toEqual([['web', ['1.2.3']], ['web', ['1.2.2']]]);
  });

  it('plans nothing for a package with no selected version', () => {
    expect(buildPlan([listed('web', [['a', []]])], {})).toEqual([]);
  });
});

describe('pagesOf', () => {
  it('cuts a list into pages, the last one shorter', () => {
    expect(pagesOf([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
  });

  it('gives one page when everything fits and none for nothing', () => {
    expect(pagesOf([1, 2], 10)).toEqual([[1, 2]]);
    expect(pagesOf([], 10)).toEqual([]);
  });

  it.each([0, -1, 1.5, Number.NaN])('refuses a page size of %s', (size) => {
    expect(() => pagesOf([1], size))
      .toThrow(expect.objectContaining({ name: 'InvalidInputError' }));
  });
});

describe('goneFromSource', () => {
  it('reports tags that the source no longer has', () => {
    const inventory = new Map([['web', ['latest', '1.2.3', 'old']]]);
    const listing = [listed('web', [['a', ['latest', '1.2.3']]])];

    expect(goneFromSource(inventory, listing)).toEqual([
      { package: 'web', tags: ['old'], packageGone: false },
    ]);
  });

  it('reports a package gone whole with every tag it had', () => {
    const inventory = new Map([['web', ['latest']],
      ['api', ['v2', 'v1']]]);
    const listing = [listed('web', [['a', ['latest']]])];

    expect(goneFromSource(inventory, listing)).toEqual([
      { package: 'api', tags: ['v1', 'v2'], packageGone: true },
    ]);
  });

  it('counts a tag the policy thinned out as still in the source', () => {
    const inventory = new Map([['web', ['1.2.2', '1.2.3']]]);
    const listing = [listed('web', [['a', ['1.2.4']], ['b', ['1.2.3']],
      ['c', ['1.2.2']]])];

    expect(goneFromSource(inventory, listing)).toEqual([]);
  });

  it('does not report a tag that moved to another digest', () => {
    const inventory = new Map([['web', ['latest']]]);
    const listing = [listed('web', [['z', ['latest']], ['a', []]])];

    expect(goneFromSource(inventory, listing)).toEqual([]);
  });

  it('leaves out packages the listing filter did not match', () => {
    const inventory = new Map([['web', ['latest']], ['api', ['v1']]]);
    const listing = [listed('web', [['a', []]])];

    expect(goneFromSource(inventory, listing, { packages: /^web$/g }))
      .toEqual([{ package: 'web', tags: ['latest'], packageGone: false }]);
  });

  it('reports nothing on a first run', () => {
    expect(goneFromSource(new Map(), [listed('web', [['a', ['x']]])]))
      .toEqual([]);
  });
});

describe('nextInventory', () => {
  it('adds the tags planned now to what the backup held', () => {
    const previous = new Map([['web', ['old', 'latest']]]);
    const plan = buildPlan([
      listed('web', [['a', ['latest', '1.2.3']]]),
      listed('api', [['b', ['v1']]]),
    ], {});

    expect(nextInventory(previous, plan)).toEqual(new Map([
      ['api', ['v1']],
      ['web', ['1.2.3', 'latest', 'old']],
    ]));
  });

  it('keeps a tag gone from the source listed, run after run', () => {
    const first = nextInventory(new Map(), buildPlan(
      [listed('web', [['a', ['latest', 'beta']]])], {}));
    const listing = [listed('web', [['a', ['latest']]])];

    const second = nextInventory(first, buildPlan(listing, {}));

    expect(second.get('web')).toEqual(['beta', 'latest']);
    expect(goneFromSource(second, listing)).toEqual([
      { package: 'web', tags: ['beta'], packageGone: false },
    ]);
  });

  it('does not change the inventory it is given', () => {
    const previous = new Map([['web', ['latest']]]);

    nextInventory(previous, buildPlan([listed('web', [['a', ['v']]])], {}));

    expect(previous).toEqual(new Map([['web', ['latest']]]));
  });
});
