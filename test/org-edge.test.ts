// `npm start -- run` on org layouts and failures the main org test does
// not cover, each pinning a behaviour a user met: the source registry
// refusing a token the API accepts, and several owners backed up into one
// target.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { DEFAULT_TOKEN, startGitHubApi, type GitHubApi }
  from './harness/github-api.js';
import {
  createLayout, pushFixture, requireBinaries, startRegistry, stopAll,
  type Fixture, type TestRegistry,
} from './harness/index.js';
import { dockerConfig, runCli, tempDir, type CliResult }
  from './copy-setup.js';

let api: GitHubApi;
let source: TestRegistry;
let target: TestRegistry;
let app: Fixture;
let tool: Fixture;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  requireBinaries();
  const [ghcr, backup, layout] = await Promise.all([
    startRegistry({ auth: 'token', name: 'ghcr',
      users: [{ username: 'octocat', password: DEFAULT_TOKEN }] }),
    startRegistry({ auth: 'htpasswd', name: 'target' }),
    createLayout(),
  ]);
  [source, target] = [ghcr, backup];
  app = await layout.image({ ref: 'app', layerSizes: [1024] });
  tool = await layout.image({ ref: 'tool', layerSizes: [1024] });

  await pushFixture(app, source, 'alpha/app:1.0.0');
  await pushFixture(tool, source, 'beta/tool:latest');

  api = await startGitHubApi({
    maxPerPage: 2,
    fixtures: [
      { owner: 'alpha', kind: 'org', packages: [
        { name: 'app', versions: [{ digest: app.digest, tags: ['1.0.0'] }] },
      ] },
      { owner: 'beta', kind: 'org', packages: [
        { name: 'tool', versions: [
          { digest: tool.digest, tags: ['latest'] }] },
      ] },
    ],
  });

  env = {
    DOCKER_CONFIG: await dockerConfig([
      { host: target.host, credentials: target.credentials }]),
    GITHUB_TOKEN: DEFAULT_TOKEN,
    GITHUB_USERNAME: 'octocat',
  };
});

afterAll(async () => {
  await api?.close();
  await stopAll();
});

/** `npm start -- run` against our servers, with its own --state. */
async function backup(args: string[], extraEnv: NodeJS.ProcessEnv = {},
  state?: string): Promise<CliResult> {
  return runCli(['run', '--github-api', api.url,
    '--source-registry', `http://${source.host}`,
    '--state', state ?? await tempDir('state'), ...args],
  { ...env, ...extraEnv });
}

interface Failure { package: string; error: { name: string;
  message: string } }

describe('npm start -- run, edge cases', () => {
  it('says the GitHub token was refused by the source registry when the ' +
    'API accepted it', async () => {
    // Prepare: the registry's token service knows only octocat
    const extra = { GITHUB_USERNAME: 'mallory' };

    // Act
    const run = await backup(['--org', 'alpha', '--target',
      `http://${target.host}/refused`, '--json'], extra);

    // Assess: the image fails with what to do about the token, not with
    // a docker login for a registry the user never logged in to
    expect(run.status, run.stderr).toBe(1);
    const report = JSON.parse(run.stdout) as { failures: Failure[] };
    expect(report.failures).toHaveLength(1);
    const { message } = report.failures[0]!.error;
    expect(report.failures[0]!.error.name).toBe('AuthenticationError');
    expect(message).toContain(source.host);
    expect(message).toContain('GitHub token');
    expect(message).toContain('read:packages');
    expect(message).not.toContain('docker login');
    expect(run.stdout + run.stderr).not.toContain(DEFAULT_TOKEN);
  });
});

describe('npm start -- run, two owners into one target', () => {
  it('never lists another owner\'s packages as gone from the source',
    async () => {
      // Prepare: alpha and beta back up into the same path, one state
      const state = await tempDir('shared-state');
      const into = ['--target', `http://${target.host}/shared`, '--json'];
      const first = await backup(['--org', 'alpha', ...into], {}, state);
      expect(first.status, first.stderr).toBe(0);
      const second = await backup(['--org', 'beta', ...into], {}, state);
      expect(second.status, second.stderr).toBe(0);

      // Act
      const rerun = await backup(['--org', 'alpha', ...into], {}, state);

      // Assess: beta's tool is in the target, but alpha never had it
      expect(rerun.status, rerun.stderr).toBe(0);
      const report = JSON.parse(rerun.stdout) as {
        images: { upToDate: number };
        goneFromSource: { count: number; tags: string[] } };
      expect(report.images.upToDate).toBe(1);
      expect(report.goneFromSource).toEqual({ count: 0, tags: [] });
    });

  it('still lists a tag deleted from one owner as gone', async () => {
    // Prepare
    const state = await tempDir('gone-state');
    const into = ['--target', `http://${target.host}/gone`, '--json'];
    for (const org of ['alpha', 'beta']) {
      const run = await backup(['--org', org, ...into], {}, state);
      expect(run.status, run.stderr).toBe(0);
    }
    const beta = api.package('tool', 'beta');
    const versions = beta.versions;
    beta.versions = [];

    try {
      // Act
      const rerun = await backup(['--org', 'beta', ...into], {}, state);

      // Assess
      expect(rerun.status, rerun.stderr).toBe(0);
      const report = JSON.parse(rerun.stdout) as {
        goneFromSource: { count: number; tags: string[] } };
      expect(report.goneFromSource).toEqual({ count: 1,
        tags: ['tool:latest'] });
    } finally {
      beta.versions = versions;
    }
  });

  it('says so when --packages matches no package, and copies nothing',
    async () => {
      // Act
      const run = await backup(['--org', 'alpha', '--packages', '^nope$',
        '--target', `http://${target.host}/nothing`]);

      // Assess
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout).toContain(
        'Note: no container package of alpha matches --packages ^nope$.');
      expect(run.stdout).toContain('0 selected');
      const intoNothing = (await target.requests())
        .filter((request) => request.path.startsWith('/v2/nothing/'));
      expect(intoNothing).toEqual([]);
    });
});
