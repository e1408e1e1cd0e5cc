// `npm start -- run` end to end, as a user runs it: a subprocess against
// our GitHub API server (Link pagination over several pages), a GHCR-like
// source registry with token auth and an htpasswd target. Each test builds
// on the previous run, as successive nightly backups do, and checks what
// the registries received.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { DEFAULT_TOKEN, startGitHubApi, type GitHubApi }
  from './harness/github-api.js';
import {
  createLayout, freePort, inspectRaw, pushFixture, requireBinaries,
  startRegistry, stopAll, type Fixture, type OciLayout, type RegistryRequest,
  type TestRegistry,
} from './harness/index.js';
import {
  corruptBlob, dockerConfig, expectSameImage, manifestStatus, runCli,
  tempDir, type CliResult,
} from './copy-setup.js';

const OWNER = 'acme';

let api: GitHubApi;
let source: TestRegistry;
let target: TestRegistry;
let layout: OciLayout;
let env: NodeJS.ProcessEnv;
let targetArg: string;

/** The images the org publishes, by role. */
const images = {} as Record<'app100' | 'app101' | 'app200rc' | 'sig' |
  'baseA' | 'cli' | 'movedLatest' | 'extra' | 'broken', Fixture>;

beforeAll(async () => {
  requireBinaries();
  [source, target, layout] = await Promise.all([
    // GHCR takes any user name with the token as the password
    startRegistry({ auth: 'token', name: 'ghcr',
      users: [{ username: 'octocat', password: DEFAULT_TOKEN }] }),
    startRegistry({ auth: 'htpasswd', name: 'target' }),
    createLayout(),
  ]);

  images.app100 = await layout.image({ ref: 'app100' });
  images.app101 = await layout.image({ ref: 'app101' });
  images.app200rc = await layout.multiPlatformIndex({ ref: 'app200rc' });
  images.sig = await layout.image({ ref: 'sig', layerSizes: [64] });
  const shared = await layout.imagesSharingBase({
    refs: ['base-a', 'cli'], baseLayerSizes: [65536, 32768] });
  [images.baseA, images.cli] = shared.images;
  images.movedLatest = await layout.image({ ref: 'moved' });
  images.extra = await layout.image({ ref: 'extra' });
  images.broken = await layout.image({ ref: 'broken',
    layerSizes: [4096] });

  const sigTag = `sha256-${images.app101.digest.slice(7)}.sig`;
  const staleSigTag = `sha256-${images.app100.digest.slice(7)}.sig`;
  // one push at a time into a repository: two pushes of one blob at once
  // can race in the registry
  const pushApp = async () => {
    const app: [Fixture, string][] = [
      [images.app100, '1.0.0'], [images.app101, '1.0.1'],
      [images.app101, 'latest'], [images.app200rc, '2.0.0-rc.1'],
      [images.sig, sigTag], [images.sig, staleSigTag],
      [images.movedLatest, 'next'],
    ];
    for (const [fixture, tag] of app) {
      await pushFixture(fixture, source, `${OWNER}/app:${tag}`);
    }
  };
  await Promise.all([
    pushApp(),
    pushFixture(images.baseA, source, `${OWNER}/base-a:stable`),
    pushFixture(images.cli, source, `${OWNER}/tools/cli:1.2`),
    pushFixture(images.extra, source, `${OWNER}/extra:1`),
    pushFixture(images.broken, source, `${OWNER}/broken:v1`),
  ]);
  await corruptBlob(source, images.broken.layers![0]!.digest);

  // GitHub lists the newest version first; two per page, so every
  // listing spans several pages
  api = await startGitHubApi({
    maxPerPage: 2,
    fixtures: {
      owner: OWNER, kind: 'org', packages: [
        { name: 'app', versions: [
          { digest: images.sig.digest, tags: [sigTag, staleSigTag] },
          { digest: images.app200rc.digest, tags: ['2.0.0-rc.1'] },
          { digest: images.app101.digest, tags: ['1.0.1', 'latest'] },
          { digest: images.app100.digest, tags: ['1.0.0'] },
        ] },
        { name: 'base-a', versions: [
          { digest: images.baseA.digest, tags: ['stable'] }] },
        { name: 'tools/cli', visibility: 'private', versions: [
          { digest: images.cli.digest, tags: ['1.2'] }] },
        { name: 'broken', versions: [
          { digest: images.broken.digest, tags: ['v1'] }] },
      ],
    },
  });

  env = {
    DOCKER_CONFIG: await dockerConfig([
      { host: target.host, credentials: target.credentials }]),
    XDG_STATE_HOME: await tempDir('state-home'),
    GITHUB_TOKEN: DEFAULT_TOKEN,
    GITHUB_USERNAME: 'octocat',
  };
  targetArg = `http://${target.host}/backup`;
});

afterAll(async () => {
  await api?.close();
  await stopAll();
});

/** `npm start -- run` for the org, against our servers. */
function backup(...args: string[]): Promise<CliResult> {
  return runCli(['run', '--org', OWNER, '--target', targetArg,
    '--github-api', api.url, '--source-registry', `http://${source.host}`,
    ...args], env);
}

/** The org's packages but the broken one. */
const HEALTHY = '^(app|base-a|tools/cli|extra)$';

interface JsonReport {
  status: string;
  images: { total: number; copied: number; upToDate: number;
    failed: number };
  blobs: { uploaded: number; mounted: number; skipped: number };
  bytesUploaded: number;
  failures: { package: string; tags: string[];
    error: { name: string; message: string } }[];
  goneFromSource: { count: number; tags: string[] };
  plan?: { package: string; tags: string[]; bytes: number }[];
}

function report(run: CliResult): JsonReport {
  return JSON.parse(run.stdout) as JsonReport;
}

function writes(requests: RegistryRequest[]): RegistryRequest[] {
  return requests.filter((r) => ['POST', 'PUT', 'PATCH'].includes(r.method));
}

describe('npm start -- run', () => {
  it('copies exactly the tags the selection policy keeps', async () => {
    // Act
    const run = await backup('--packages', HEALTHY, '--concurrency', '1',
      '--json');

    // Assess
    expect(run.status, run.stderr).toBe(0);
    expect(report(run)).toMatchObject({ status: 'succeeded',
      images: { total: 5, copied: 5, upToDate: 0, failed: 0 } });

    // 1.0.0 is thinned out by 1.0.1; the lone 2.0.0-rc.1 stays; the
    // signature of a kept version stays, the one of a dropped version not
    const sigTag = `sha256-${images.app101.digest.slice(7)}.sig`;
    const kept: [string, string, Fixture][] = [
      ['app', '1.0.1', images.app101],
      ['app', 'latest', images.app101],
      ['app', '2.0.0-rc.1', images.app200rc],
      ['app', sigTag, images.sig],
      ['base-a', 'stable', images.baseA],
      ['tools/cli', '1.2', images.cli],
    ];
    for (const [pkg, tag, fixture] of kept) {
      await expectSameImage(source, `${OWNER}/${pkg}:${tag}`,
        target, `backup/${pkg}:${tag}`, fixture.digest);
    }
    const dropped = ['1.0.0', `sha256-${images.app100.digest.slice(7)}.sig`];
    for (const tag of dropped) {
      expect(await manifestStatus(target, 'backup/app', tag)).toBe(404);
    }
    expect(await manifestStatus(target, 'backup/broken', 'v1')).toBe(404);
  });

  it('mounts a base layer shared with a package copied before',
    async () => {
      // Prepare: base-a was copied before tools/cli (--concurrency 1)
      const requests = await target.requests();
      const [base] = images.baseA.layers!;

      // Assess: one upload of the shared layer, then a mount from base-a
      const uploads = requests.filter((r) => r.method === 'PUT' &&
        r.query.get('digest') === base!.digest);
      const mounts = requests.filter((r) => r.method === 'POST' &&
        r.query.get('mount') === base!.digest && r.status === 201);
      expect(uploads).toHaveLength(1);
      expect(uploads[0]!.path).toMatch(/^\/v2\/backup\/base-a\//);
      expect(mounts).toHaveLength(1);
      expect(mounts[0]!.path).toMatch(/^\/v2\/backup\/tools\/cli\//);
      expect(mounts[0]!.query.get('from')).toBe('backup/base-a');
    });

  it('uploads nothing and asks the source nothing on an unchanged rerun',
    async () => {
      // Prepare
      await Promise.all([source.resetRequests(), target.resetRequests()]);
      source.tokenIssuer!.resetRequests();

      // Act
      const run = await backup('--packages', HEALTHY, '--json');

      // Assess
      expect(run.status, run.stderr).toBe(0);
      expect(report(run)).toMatchObject({
        images: { total: 5, copied: 0, upToDate: 5, failed: 0 },
        blobs: { uploaded: 0, mounted: 0 }, bytesUploaded: 0 });
      expect(await source.requests()).toEqual([]);
      expect(source.tokenIssuer!.requests()).toEqual([]);
      const received = await target.requests();
      expect(writes(received)).toEqual([]);
      expect(received.every((r) => r.method === 'HEAD' ||
        r.path === '/v2/')).toBe(true);
    });

  it('updates a tag that moved in the source', async () => {
    // Prepare: latest now points at another image
    await pushFixture(images.movedLatest, source, `${OWNER}/app:latest`);
    api.moveTag('app', 'latest', images.movedLatest.digest);
    await source.resetRequests();

    // Act
    const run = await backup('--packages', HEALTHY, '--json');

    // Assess: the new digest is one more image; 1.0.1 stays as it was
    expect(run.status, run.stderr).toBe(0);
    expect(report(run).images).toMatchObject({ total: 6, copied: 1,
      upToDate: 5 });
    await expectSameImage(source, `${OWNER}/app:latest`,
      target, 'backup/app:latest', images.movedLatest.digest);
    const asked = new Set((await source.requests())
      .filter((r) => r.path.startsWith('/v2/') && r.path !== '/v2/')
      .map((r) => r.path.split('/').slice(2, 4).join('/')));
    expect([...asked]).toEqual([`${OWNER}/app`]);
  });

  it('reports a tag deleted from the source and keeps it in the target',
    async () => {
      // Prepare
      api.deleteVersion('tools/cli', images.cli.digest);

      // Act
      const run = await backup('--packages', HEALTHY);

      // Assess
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/1 tag gone from the source/);
      expect(run.stdout)
        .toMatch(/Gone from the source[^\n]*\n\s+tools\/cli:1\.2/);
      const kept = await inspectRaw(target, 'backup/tools/cli:1.2');
      expect(kept.digest).toBe(images.cli.digest);
    });

  it('prints what a dry run would move and copies nothing', async () => {
    // Prepare
    api.fixture().packages.push({ name: 'extra', versions: [
      { digest: images.extra.digest, tags: ['1'] }] });
    await target.resetRequests();

    // Act
    const run = await backup('--packages', HEALTHY, '--dry-run', '--json');

    // Assess
    expect(run.status, run.stderr).toBe(0);
    const result = report(run);
    const bytes = images.extra.blobs.reduce((sum, b) => sum + b.size, 0);
    expect(result.plan).toEqual([expect.objectContaining({
      package: 'extra', tags: ['1'], bytes })]);
    expect(result.bytesUploaded).toBe(bytes);
    expect(writes(await target.requests())).toEqual([]);
    expect(await manifestStatus(target, 'backup/extra', '1')).toBe(404);
  });

  it('fails a broken image alone and names it in the summary', async () => {
    // Act: every package, the broken one included
    const run = await backup();

    // Assess: extra is copied, broken fails, the run exits non-zero
    expect(run.status).toBe(1);
    expect(run.stdout).toMatch(/7 selected: 1 copied, 5 up to date, 1 failed/);
    expect(run.stdout).toMatch(/Failed:\n\s+broken:v1\n\s+IntegrityError/);
    await expectSameImage(source, `${OWNER}/extra:1`,
      target, 'backup/extra:1', images.extra.digest);
    expect(await manifestStatus(target, 'backup/broken', 'v1')).toBe(404);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('npm start -- run, when it cannot run', () => {
  it('says the token is wrong, without printing it', async () => {
    // Act
    const run = await runCli(['run', '--org', OWNER, '--target', targetArg,
      '--github-api', api.url, '--source-registry', `http://${source.host}`],
    { ...env, GITHUB_TOKEN: 'ghp_WrongTokenWrongTokenWrongToken0000' });

    // Assess
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/token/i);
    expect(run.stderr).not.toMatch(/WrongToken/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('says the organisation does not exist', async () => {
    // Act
    const run = await runCli(['run', '--org', 'no-such-org', '--target',
      targetArg, '--github-api', api.url], env);

    // Assess
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/no-such-org/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('says the target refuses the credentials', async () => {
    // Act
    const run = await runCli(['run', '--org', OWNER, '--target', targetArg,
      '--github-api', api.url, '--source-registry', `http://${source.host}`,
      '--packages', '^base-a$'],
    { ...env, DOCKER_CONFIG: await dockerConfig([{ host: target.host,
      credentials: { username: 'nobody', password: 'wrong-password' } }]) });

    // Assess
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(new RegExp(target.host.replace('.', '\\.')));
    expect(run.stderr).not.toMatch(/wrong-password/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('says the target is unreachable', async () => {
    // Prepare: a port nothing listens on
    const port = await freePort();

    // Act
    const run = await runCli(['run', '--org', OWNER, '--target',
      `http://127.0.0.1:${port}/backup`, '--github-api', api.url,
      '--source-registry', `http://${source.host}`, '--packages', '^base-a$'],
    env);

    // Assess
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`127\\.0\\.0\\.1:${port} is ` +
      'unreachable'));
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('rejects an invalid --target with a usage error', async () => {
    // Act
    const run = await runCli(['run', '--org', OWNER, '--target',
      'ftp://example.com/x'], env);

    // Assess
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/--target/);
    expect(run.stderr).toMatch(/scheme/);
  });
});
