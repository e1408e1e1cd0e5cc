import { inspect } from 'node:util';

import { afterEach, describe, expect, it } from 'vitest';

import {
  AuthenticationError, BackupError, NotFoundError, TransientError,
} from '../functions/lib/errors.js';
import { listContainerPackages } from '../functions/lib/github/index.js';
import type { ListOptions } from '../functions/lib/github/index.js';
import {
  DEFAULT_TOKEN, primaryRateLimit, secondaryRateLimit, startGitHubApi,
  type GitHubApi, type GitHubApiOptions, type GitHubFixture,
} from './harness/github-api.js';

/** A digest that reads as its number, for readable assertions. */
function digest(n: number): string {
  return `sha256:${n.toString(16).padStart(64, '0')}`;
}

let api: GitHubApi | undefined;

afterEach(async () => {
  await api?.close();
  api = undefined;
});

async function serve(fixtures: GitHubApiOptions['fixtures'],
  options: Omit<GitHubApiOptions, 'fixtures'> = {}): Promise<GitHubApi> {
  api = await startGitHubApi({ fixtures, ...options });

  return api;
}

function list(server: GitHubApi, options: Partial<ListOptions> = {}) {
  return listContainerPackages({
    org: 'acme', token: DEFAULT_TOKEN, baseUrl: server.url,
    retryDelayMs: 1, ...options,
  });
}

/** The rejection of `promise`, failing the test when it resolves. */
async function failure(promise: Promise<unknown>): Promise<BackupError> {
  const error = await promise.then(() => undefined, (caught) => caught);
  expect(error).toBeInstanceOf(BackupError);

  return error as BackupError;
}

function expectNoToken(error: BackupError): void {
  const everything = [error.message, error.describe(),
    inspect(error, { depth: 8 }), JSON.stringify(error)].join('\n');
  expect(everything).not.toContain(DEFAULT_TOKEN);
}

const acme: GitHubFixture = {
  owner: 'Acme', kind: 'org',
  packages: [
    { name: 'web', visibility: 'public', versions: [
      { digest: digest(1), tags: ['latest', '1.2.0'] },
      { digest: digest(2), tags: [] },
    ] },
    { name: 'Team/API', visibility: 'private', versions: [
      { digest: digest(3), tags: ['main'] },
    ] },
    { name: 'tools', visibility: 'internal', versions: [
      { digest: digest(4), tags: ['v1'] },
    ] },
  ],
};

describe('listContainerPackages', () => {
  describe('listing an organisation', () => {
    it('returns every package of every visibility with its versions',
      async () => {
        const server = await serve(structuredClone(acme));

        const packages = await list(server);

        expect(packages).toEqual([
          { name: 'web', visibility: 'public', repository: 'acme/web',
            versions: [
              expect.objectContaining({ digest: digest(1),
                tags: ['latest', '1.2.0'] }),
              expect.objectContaining({ digest: digest(2), tags: [] }),
            ] },
          { name: 'Team/API', visibility: 'private',
            repository: 'acme/team/api',
            versions: [expect.objectContaining({ digest: digest(3),
              tags: ['main'] })] },
          { name: 'tools', visibility: 'internal', repository: 'acme/tools',
            versions: [expect.objectContaining({ digest: digest(4),
              tags: ['v1'] })] },
        ]);
        expect(packages[0]?.versions[0]).toEqual({
          id: expect.any(Number), digest: digest(1),
          tags: ['latest', '1.2.0'],
          createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
          updatedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        });
      });

    it('follows Link pagination over several pages of packages and of '
      + 'versions', async () => {
      const server = await serve({
        owner: 'acme', kind: 'org',
        packages: Array.from({ length: 5 }, (_, p) => ({
          name: `pkg-${p}`,
          versions: Array.from({ length: 5 }, (_, v) => ({
            digest: digest(p * 10 + v), tags: [`t${v}`] })),
        })),
      }, { maxPerPage: 2 });

      const packages = await list(server);

      expect(packages.map((pkg) => pkg.name))
        .toEqual(['pkg-0', 'pkg-1', 'pkg-2', 'pkg-3', 'pkg-4']);
      for (const [p, pkg] of packages.entries()) {
        expect(pkg.versions.map((version) => version.digest))
          .toEqual([0, 1, 2, 3, 4].map((v) => digest(p * 10 + v)));
      }
      // 3 pages of packages, 3 pages of versions for each of 5 packages
      expect(server.count(/\/packages\?/)).toBe(3);
      expect(server.count(/\/versions\?/)).toBe(15);
      // later pages come from the Link header, not from a rebuilt URL
      expect(server.count(/^\/organizations\/\d+\/packages\?.*page=3/))
        .toBe(1);
    });

    it('asks for 100 items a page and reads a second page of 100',
      async () => {
        const server = await serve({
          owner: 'acme', kind: 'org',
          packages: [{ name: 'big', versions: Array.from({ length: 150 },
            (_, v) => ({ digest: digest(v), tags: [`build-${v}`] })) }],
        });

        const [pkg] = await list(server);

        expect(pkg?.versions).toHaveLength(150);
        expect(pkg?.versions[149]?.tags).toEqual(['build-149']);
        expect(server.count(/\/versions\?.*per_page=100/)).toBe(2);
        expect(server.count(/\/versions\?.*state=active/)).toBe(2);
      });

    it('sends a package name containing a slash as %2F', async () => {
      const server = await serve(structuredClone(acme));

      await list(server, { packages: /^Team\// });

      expect(server.count('/orgs/acme/packages/container/Team%2FAPI/'
        + 'versions')).toBe(1);
    });

    it('lists the versions of only the packages the filter matches',
      async () => {
        const server = await serve(structuredClone(acme));

        const packages = await list(server, { packages: /^w/g });
        const again = await list(server, { packages: /^w/g });

        expect(packages.map((pkg) => pkg.name)).toEqual(['web']);
        expect(again.map((pkg) => pkg.name)).toEqual(['web']);
        expect(server.count('/versions')).toBe(2);
      });

    it('sees a moved tag and a deleted version on the next listing',
      async () => {
        const server = await serve(structuredClone(acme));
        server.moveTag('web', 'latest', digest(9));
        server.deleteVersion('web', digest(2));

        const [web] = await list(server, { packages: /^web$/ });

        expect(web?.versions.map(({ digest, tags }) => ({ digest, tags })))
          .toEqual([
            { digest: digest(9), tags: ['latest'] },
            { digest: digest(1), tags: ['1.2.0'] },
          ]);
      });

    it('leaves out a package deleted between the two listings',
      async () => {
        const server = await serve(structuredClone(acme));
        server.failNext(
          { status: 404, body: { message: 'Package not found.' } },
          { match: '/tools/versions' });

        const packages = await list(server);

        expect(packages.map((pkg) => pkg.name)).toEqual(['web', 'Team/API']);
      });

    it('works against a GitHub Enterprise Server API root', async () => {
      const server = await serve(structuredClone(acme),
        { basePath: '/api/v3', maxPerPage: 1 });

      const packages = await list(server,
        { baseUrl: `${server.url}/api/v3/` });

      expect(packages).toHaveLength(3);
      expect(server.count(/^\/api\/v3\/organizations\/\d+\/packages\?/))
        .toBe(2);
    });
  });

  describe('listing a user', () => {
    const alice: GitHubFixture = {
      owner: 'alice', kind: 'user',
      packages: [
        { name: 'public-app', visibility: 'public',
          versions: [{ digest: digest(1), tags: ['latest'] }] },
        { name: 'secret-app', visibility: 'private',
          versions: [{ digest: digest(2), tags: ['latest'] }] },
      ],
    };

    it('lists the token owner\'s private packages through /user',
      async () => {
        const server = await serve(structuredClone(alice), { tokens: {
          [DEFAULT_TOKEN]: { login: 'Alice', scopes: ['read:packages'] },
        } });

        const packages = await list(server, { org: undefined, user: 'alice' });

        expect(packages.map((pkg) => [pkg.name, pkg.repository])).toEqual([
          ['public-app', 'alice/public-app'],
          ['secret-app', 'alice/secret-app'],
        ]);
        expect(server.count(/^\/user\/packages\/container\/secret-app\//))
          .toBe(1);
      });

    it('lists another user\'s public packages through /users/NAME',
      async () => {
        const server = await serve(structuredClone(alice));

        const packages = await list(server, { org: undefined, user: 'alice' });

        expect(packages.map((pkg) => pkg.name)).toEqual(['public-app']);
        expect(server.count(/^\/users\/alice\/packages\?/)).toBe(1);
      });

    it('follows pagination of a user\'s packages, as owner and visitor',
      async () => {
        const fixture = structuredClone(alice);
        fixture.packages.push({ name: 'third', versions: [
          { digest: digest(3), tags: ['a'] },
          { digest: digest(4), tags: ['b'] },
        ] });
        const server = await serve(fixture, { maxPerPage: 1, tokens: {
          [DEFAULT_TOKEN]: { login: 'alice', scopes: ['write:packages'] },
          other: { login: 'bob', scopes: ['read:packages'] },
        } });

        const owned = await list(server, { org: undefined, user: 'alice' });
        const visited = await list(server,
          { org: undefined, user: 'alice', token: 'other' });

        expect(owned.map((pkg) => pkg.versions.length)).toEqual([1, 1, 2]);
        expect(visited.map((pkg) => pkg.name))
          .toEqual(['public-app', 'third']);
        expect(visited[1]?.versions.map((version) => version.tags))
          .toEqual([['a'], ['b']]);
        expect(server.count(/^\/user\/packages\?.*page=3/)).toBe(1);
        expect(server.count(/^\/user\/\d+\/packages\?.*page=2/)).toBe(1);
      });

    it('says no user NAME when the user does not exist', async () => {
      const server = await serve(structuredClone(alice));

      const error = await failure(list(server,
        { org: undefined, user: 'nobody' }));

      expect(error).toBeInstanceOf(NotFoundError);
      expect(error.message).toBe(`no user nobody on ${server.url} (or the `
        + 'token cannot see it)');
    });
  });

  describe('errors', () => {
    it('refuses a bad token with what to do, without printing it',
      async () => {
        const server = await serve(structuredClone(acme));
        const token = 'ghp_WrongTokenWrongTokenWrongToken0002';

        const error = await failure(list(server, { token }));

        expect(error).toBeInstanceOf(AuthenticationError);
        expect(error.name).toBe('AuthenticationError');
        expect(error.status).toBe(401);
        expect(error.message).toBe('the GitHub token was refused '
          + '(GITHUB_TOKEN): create a token with read:packages');
        expect(error.describe()).toContain('Bad credentials');
        expect(inspect(error, { depth: 8 })).not.toContain(token);
      });

    it('says the token lacks read:packages, naming the scopes it has',
      async () => {
        const server = await serve(structuredClone(acme), { tokens: {
          [DEFAULT_TOKEN]: { login: 'octocat', scopes: ['repo', 'gist'] },
        } });

        const error = await failure(list(server));

        expect(error).toBeInstanceOf(AuthenticationError);
        expect(error.status).toBe(403);
        expect(error.message).toBe('the token lacks read:packages');
        expect(error.describe()).toContain('token scopes: repo, gist');
        expectNoToken(error);
      });

    it('says no organisation NAME on the API when the org is unknown',
      async () => {
        const server = await serve(structuredClone(acme));

        const error = await failure(list(server, { org: 'nope' }));

        expect(error).toBeInstanceOf(NotFoundError);
        expect(error.status).toBe(404);
        expect(error.message).toBe(`no organisation nope on ${server.url} `
          + '(or the token cannot see it)');
        expectNoToken(error);
      });

    it('reports an unreachable API as transient, naming its URL',
      async () => {
        const server = await serve(structuredClone(acme));
        const url = server.url;
        await server.close();
        api = undefined;

        const error = await failure(listContainerPackages({
          org: 'acme', token: DEFAULT_TOKEN, baseUrl: url, retries: 1,
          retryDelayMs: 1 }));

        expect(error).toBeInstanceOf(TransientError);
        expect(error.message)
          .toContain(`could not reach the GitHub API at ${url}`);
        expectNoToken(error);
      });

    it('rejects options naming both or neither of org and user', async () => {
      await expect(listContainerPackages({ token: DEFAULT_TOKEN }))
        .rejects.toMatchObject({ name: 'InvalidInputError' });
      await expect(listContainerPackages({ org: 'a', user: 'b',
        token: DEFAULT_TOKEN })).rejects.toMatchObject(
        { name: 'InvalidInputError' });
    });

    it('stops with an InterruptedError when its signal aborts', async () => {
      const server = await serve(structuredClone(acme));
      const controller = new AbortController();
      controller.abort();

      const error = await failure(list(server,
        { signal: controller.signal }));

      expect(error.name).toBe('InterruptedError');
    });

    it('asks for a token when it is empty', async () => {
      await expect(listContainerPackages({ org: 'acme', token: '' }))
        .rejects.toMatchObject({ name: 'AuthenticationError',
          hint: expect.stringContaining('GITHUB_TOKEN') });
    });
  });

  describe('retries', () => {
    it('waits out a secondary rate limit and goes on', async () => {
      const server = await serve(structuredClone(acme));
      server.failNext(secondaryRateLimit(0), { times: 2,
        match: '/web/versions' });

      const packages = await list(server);

      expect(packages).toHaveLength(3);
      expect(server.count('/web/versions')).toBe(3);
    });

    it('retries a 502 and a dropped connection', async () => {
      const server = await serve(structuredClone(acme));
      server.failNext({ status: 502, body: { message: 'Server Error' } });
      server.failNext('disconnect');

      const packages = await list(server);

      expect(packages).toHaveLength(3);
      expect(server.count(/\/orgs\/acme\/packages\?/)).toBe(3);
    });

    it('gives up after the bounded retries with a TransientError',
      async () => {
        const server = await serve(structuredClone(acme));
        server.failNext(secondaryRateLimit(0), { times: 10 });

        const error = await failure(list(server, { retries: 2 }));

        expect(error).toBeInstanceOf(TransientError);
        expect(error.status).toBe(403);
        expect(error.message).toContain('rate limit');
        expect(server.count()).toBe(3);
        expectNoToken(error);
      });

    it('fails at once when the rate limit resets later than it would wait',
      async () => {
        const server = await serve(structuredClone(acme));
        const resetAt = Date.now() + 3_600_000;
        server.failNext(primaryRateLimit(resetAt), { times: 10 });

        const error = await failure(list(server));

        expect(error).toBeInstanceOf(TransientError);
        expect(error.describe()).toContain(
          new Date(Math.ceil(resetAt / 1000) * 1000).toISOString()
            .slice(0, 13));
        expect(server.count()).toBe(1);
      });

    it('retries a 429 and then succeeds', async () => {
      const server = await serve(structuredClone(acme));
      server.failNext({ status: 429, headers: { 'retry-after': '0' },
        body: { message: 'Too Many Requests' } });

      await expect(list(server)).resolves.toHaveLength(3);
    });
  });
});
