// `npm start -- copy SRC DST` as a user runs it: a subprocess with its
// credentials in a Docker config, against a GHCR-like source (token auth)
// and an htpasswd target, checked from what the registries received.

import { Writable } from 'node:stream';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { main } from '../functions/cli/copy.js';
import {
  createLayout, pushFixture, pushFixtureRaw, requireBinaries, stopAll,
  type Fixture, type OciLayout,
} from './harness/index.js';
import {
  cliEnv, corruptBlob, dockerConfig, expectSameImage, foreignLayerImage,
  imageRef as ref, manifestStatus, runCli, startPair, tempDir, type Pair,
} from './copy-setup.js';

let pair: Pair;
let layout: OciLayout;
/** DOCKER_CONFIG with the right credentials for both registries. */
let env: NodeJS.ProcessEnv;
let counter = 0;

beforeAll(async () => {
  requireBinaries();
  [pair, layout] = await Promise.all([startPair(), createLayout()]);
  env = await cliEnv(pair);
});

afterAll(stopAll);

function repository(label: string): string {
  return `team/${label}-${++counter}`;
}

async function publish(fixture: Fixture, reference: string): Promise<void> {
  await pushFixture(fixture, pair.source, reference);
}

interface JsonResult {
  status: string;
  digest: string;
  blobs: { uploaded: number; mounted: number; skipped: number;
    foreign: number };
  bytesUploaded: number;
  manifestsPushed: number;
}

describe('npm start -- copy', () => {
  it('copies a multi-platform image and prints the counts as JSON',
    async () => {
      // Prepare
      const fixture = await layout.multiPlatformIndex();
      const repo = repository('app');
      await publish(fixture, `${repo}:1.0`);

      // Act
      const run = await runCli(['copy', '--json',
        ref(pair.source, `${repo}:1.0`), ref(pair.target, repo)], env);

      // Assess
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      const result = JSON.parse(run.stdout) as JsonResult;
      expect(result).toMatchObject({
        status: 'copied',
        digest: fixture.digest,
        blobs: { uploaded: fixture.blobs.length, mounted: 0, skipped: 0,
          foreign: 0 },
        bytesUploaded: fixture.blobs.reduce((sum, b) => sum + b.size, 0),
        manifestsPushed: fixture.manifests.length,
      });
      await expectSameImage(pair.source, `${repo}:1.0`, pair.target,
        `${repo}:1.0`, fixture.digest);
    });

  it('prints a readable summary: blobs uploaded, mounted and skipped, ' +
    'bytes and time', async () => {
    // Prepare
    const fixture = await layout.dockerManifestList();
    const repo = repository('list');
    await publish(fixture, `${repo}:2.0`);

    // Act
    const run = await runCli(['copy', ref(pair.source, `${repo}:2.0`),
      ref(pair.target, `${repo}:stable`)], env);

    // Assess
    expect(run.status).toBe(0);
    const from = ref(pair.source, `${repo}:2.0`);
    const to = ref(pair.target, `${repo}:stable`);
    expect(run.stdout).toContain(`Copied ${from} to ${to}`);
    expect(run.stdout).toMatch(new RegExp(
      `blobs +${fixture.blobs.length} uploaded, 0 mounted, 0 skipped`));
    expect(run.stdout).toMatch(/bytes +[\d.]+ KiB uploaded/);
    expect(run.stdout).toMatch(/time +[\d.]+ m?s/);
    await expectSameImage(pair.source, `${repo}:2.0`, pair.target,
      `${repo}:stable`, fixture.digest);
  });

  it('is up to date on a second run, sending only HEAD requests',
    async () => {
      // Prepare
      const fixture = await layout.multiPlatformIndex();
      const repo = repository('again');
      await publish(fixture, `${repo}:1.0`);
      const args = ['copy', '--json', ref(pair.source, `${repo}:1.0`),
        ref(pair.target, `${repo}:1.0`)];
      expect((await runCli(args, env)).status).toBe(0);
      await Promise.all([pair.source.resetRequests(),
        pair.target.resetRequests()]);

      // Act
      const run = await runCli(args, env);

      // Assess
      expect(run.status).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ status: 'up-to-date',
        blobs: { uploaded: 0, mounted: 0, skipped: 0 } });
      const answered = async (registry: Pair['source']) =>
        (await registry.requests()).filter((r) => r.status !== 401)
          .map((r) => `${r.method} ${r.path}`);
      expect(await answered(pair.source))
        .toEqual([`HEAD /v2/${repo}/manifests/1.0`]);
      expect(await answered(pair.target))
        .toEqual([`HEAD /v2/${repo}/manifests/1.0`]);
    });

  it('mounts the layers a second repository shares with the first, ' +
    'in a new process with the same --state', async () => {
    // Prepare
    const { base, images: [first, second] } =
      await layout.imagesSharingBase();
    const [repoA, repoB] = [repository('base-a'), repository('base-b')];
    await publish(first, `${repoA}:1`);
    await publish(second, `${repoB}:1`);
    const state = await tempDir('state');
    const copy = (repo: string) => runCli(['copy', '--json',
      '--state', state, ref(pair.source, `${repo}:1`),
      ref(pair.target, `${repo}:1`)], env);
    expect((await copy(repoA)).status).toBe(0);
    await Promise.all([pair.source.resetRequests(),
      pair.target.resetRequests()]);

    // Act
    const run = await copy(repoB);

    // Assess
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ status: 'copied',
      blobs: { mounted: base.length,
        uploaded: second.blobs.length - base.length } });
    const received = await pair.target.requests();
    for (const layer of base) {
      const mounts = received.filter((r) => r.method === 'POST' &&
        r.path === `/v2/${repoB}/blobs/uploads/` &&
        r.query.get('mount') === layer.digest &&
        r.query.get('from') === repoA);
      expect(mounts.map((r) => r.status)).toEqual([201]);
      expect(received.filter((r) => r.method === 'PUT' &&
        r.query.get('digest') === layer.digest)).toEqual([]);
    }
    const pulled = (await pair.source.requests()).filter((r) =>
      r.method === 'GET' && base.some((l) => r.path.endsWith(l.digest)));
    expect(pulled).toEqual([]);
    await expectSameImage(pair.source, `${repoB}:1`, pair.target,
      `${repoB}:1`, second.digest);
  });

  describe('fails clearly', () => {
    it('exits 1 on a source blob whose bytes do not match its digest, ' +
      'leaving no tag on the target', async () => {
      // Prepare
      const fixture = await layout.multiPlatformIndex();
      const repo = repository('corrupt');
      await publish(fixture, `${repo}:1.0`);
      await corruptBlob(pair.source, fixture.blobs.at(-1)!.digest);

      // Act
      const run = await runCli(['copy', ref(pair.source, `${repo}:1.0`),
        ref(pair.target, `${repo}:1.0`)], env);

      // Assess
      expect(run.status).toBe(1);
      expect(run.stderr).toContain(fixture.blobs.at(-1)!.digest);
      expect(run.stderr).not.toMatch(/\n\s+at /);
      expect(await manifestStatus(pair.target, repo, '1.0')).toBe(404);
      expect(await manifestStatus(pair.target, repo, fixture.digest))
        .toBe(404);
    });

    it('exits 1 naming the target and the credentials, without the ' +
      'password, when the target refuses them', async () => {
      // Prepare
      const fixture = await layout.image();
      const repo = repository('denied');
      await publish(fixture, `${repo}:1.0`);
      const password = 'wrong-Pa55word-for-the-target';
      const wrong = { DOCKER_CONFIG: await dockerConfig([
        { host: pair.source.host, credentials: pair.source.credentials },
        { host: pair.target.host, credentials: {
          username: pair.target.credentials.username, password } },
      ]) };

      // Act
      const run = await runCli(['copy', ref(pair.source, `${repo}:1.0`),
        ref(pair.target, `${repo}:1.0`)], { ...env, ...wrong });

      // Assess
      expect(run.status).toBe(1);
      expect(run.stderr).toMatch(/^error: /);
      expect(run.stderr).toContain(pair.target.host);
      expect(run.stderr).toMatch(/credential|authenticat|password/i);
      expect(run.stderr).not.toContain(password);
      expect(run.stderr).not.toContain(
        Buffer.from(`${pair.target.credentials.username}:${password}`)
          .toString('base64'));
      expect(run.stderr).not.toMatch(/\n\s+at /);
      expect(await manifestStatus(pair.target, repo, '1.0')).toBe(404);
    });

    it('exits 1 on a tag the source does not have, with --json printing ' +
      'the failure as one object', async () => {
      // Act
      const repo = repository('absent');
      const run = await runCli(['copy', '--json',
        ref(pair.source, `${repo}:9.9`), ref(pair.target, repo)], env);

      // Assess
      expect(run.status).toBe(1);
      expect(JSON.parse(run.stdout)).toMatchObject({ status: 'failed',
        source: ref(pair.source, `${repo}:9.9`),
        target: ref(pair.target, `${repo}:9.9`),
        error: { name: 'NotFoundError' } });
      expect(run.stderr).toContain(`${repo}:9.9`);
    });

    it('exits 2 with a pointer to --help on a malformed reference',
      async () => {
        // Act
        const run = await runCli(['copy', 'not a reference',
          ref(pair.target, 'x:1')], env);

        // Assess
        expect(run.status).toBe(2);
        expect(run.stderr).toContain('SRC');
        expect(run.stderr).toContain('npm start -- copy --help');
      });

    it('exits 2 when DST is missing', async () => {
      // Act
      const run = await runCli(['copy', ref(pair.source, 'x:1')], env);

      // Assess
      expect(run.status).toBe(2);
      expect(run.stderr).toContain('expected SRC and DST');
    });
  });

  it('prints its usage with --help and exits 0', async () => {
    // Act
    const run = await runCli(['copy', '--help']);

    // Assess
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('Usage: npm start -- copy SRC DST');
    expect(run.stdout).toContain('--state DIR');
  });
});

describe('the copy command in-process, on a terminal', () => {
  it('shows blobs and bytes on stderr, rewritten in place, then clears ' +
    'the line', async () => {
    // Prepare
    const fixture = await layout.multiPlatformIndex();
    const repo = repository('tty');
    await publish(fixture, `${repo}:1.0`);
    const terminal = captureTerminal();

    // Act
    const status = await main([ref(pair.source, `${repo}:1.0`),
      ref(pair.target, repo)], terminal, env);

    // Assess
    expect(status).toBe(0);
    const lines = terminal.stderr.text.split('\r\x1b[2K');
    expect(lines.at(-1)).toBe('');
    expect(lines.some((line) => new RegExp(
      `^blobs \\d+/${fixture.blobs.length} .* of [\\d.]+ KiB$`)
      .test(line))).toBe(true);
    expect(terminal.stdout.text).toContain('Copied ');
  });

  it('says how many foreign layers it left out', async () => {
    // Prepare
    const { fixture } = await foreignLayerImage(layout);
    const repo = repository('foreign');
    await pushFixtureRaw(fixture, pair.source, repo, '1.0');
    const terminal = captureTerminal();

    // Act
    const status = await main([ref(pair.source, `${repo}:1.0`),
      ref(pair.target, repo)], terminal, env);

    // Assess
    expect(status).toBe(0);
    expect(terminal.stdout.text).toMatch(
      /blobs +2 uploaded, 0 mounted, 0 skipped; 1 foreign layer left out/);
  });
});

/** stdout and stderr that keep what is written; stderr claims a TTY. */
function captureTerminal() {
  const capture = (isTTY: boolean) => {
    const stream = Object.assign(new Writable({
      write(chunk: Buffer, _encoding, done) {
        stream.text += chunk.toString('utf8');
        done();
      },
    }), { text: '', isTTY, columns: 200 });
    return stream;
  };
  return { stdout: capture(false), stderr: capture(true) };
}
