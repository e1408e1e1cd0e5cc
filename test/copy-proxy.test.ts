// Copies from a source behind the harness proxy, which makes it behave as
// GHCR does where Distribution 2.8 does not: blob downloads redirected to
// a storage host, and a referrers API.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { copyImage } from '../functions/lib/copy/engine.js';
import {
  OciMediaType, createLayout, missingFromRegistry, pushFixture,
  requireBinaries, startProxy, stopAll, type OciLayout, type TestProxy,
} from './harness/index.js';
import {
  clientFor, dockerConfig, expectSameImage, manifestStatus, runCli,
  startPair, tempDir, type Pair,
} from './copy-setup.js';

let pair: Pair;
let proxy: TestProxy;
let layout: OciLayout;
let counter = 0;

beforeAll(async () => {
  requireBinaries();
  [pair, layout] = await Promise.all([startPair(), createLayout()]);
  proxy = await startProxy(pair.source);
});

afterAll(stopAll);

function repository(label: string): string {
  return `org/${label}-${++counter}`;
}

describe('copying from a GHCR-like source', () => {
  it('follows blob downloads redirected to a storage host and sends it ' +
    'no Authorization', async () => {
    // Prepare
    const fixture = await layout.multiPlatformIndex();
    const repo = repository('redirected');
    await pushFixture(fixture, pair.source, `${repo}:1.0`);
    const env = {
      DOCKER_CONFIG: await dockerConfig([
        { host: proxy.host, credentials: pair.source.credentials },
        { host: pair.target.host, credentials: pair.target.credentials },
      ]),
      XDG_STATE_HOME: await tempDir('state-home'),
    };
    proxy.resetRequests();
    proxy.redirectBlobs(true);

    // Act
    const run = await runCli(['copy', '--json',
      `http://${proxy.host}/${repo}:1.0`,
      `http://${pair.target.host}/${repo}`], env);
    proxy.redirectBlobs(false);

    // Assess
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const redirected = proxy.requests()
      .filter((r) => r.outcome === 'redirect');
    expect(redirected).toHaveLength(fixture.blobs.length);
    expect(redirected.every((r) => r.authorization)).toBe(true);
    const stored = proxy.storageRequests();
    expect(stored.map((r) => r.url.split('?')[0]).sort()).toEqual(
      fixture.blobs.map((b) => `/storage/${repo}/${b.digest}`).sort());
    expect(stored.filter((r) => r.authorization)).toEqual([]);
    expect(stored.every((r) => r.status === 200)).toBe(true);
    await expectSameImage(pair.source, `${repo}:1.0`, pair.target,
      `${repo}:1.0`, fixture.digest);
  });

  it('copies the referrers the referrers API lists, and no tag for them',
    async () => {
      // Prepare: the proxy answers the referrers API for the image
      const image = await layout.multiPlatformIndex();
      const repo = repository('api');
      await pushFixture(image, pair.source, `${repo}:1.0`);
      const artifact = await layout.artifact(image);
      await pushFixture(artifact, pair.source, `${repo}@${artifact.digest}`);
      const asked: string[] = [];
      proxy.intercept((req, res) => {
        const match = /^\/v2\/(.+)\/referrers\/(sha256:[a-f0-9]{64})$/
          .exec(req.url ?? '');
        if (!match) return false;

        asked.push(match[2]!);
        const manifests = match[2] === image.digest
          ? [artifact.descriptor] : [];
        res.writeHead(200, { 'content-type': OciMediaType.index });
        res.end(JSON.stringify({ schemaVersion: 2,
          mediaType: OciMediaType.index, manifests }));
        return true;
      });

      // Act
      const result = await copyImage({
        source: { registry: clientFor(proxy), repository: repo,
          reference: '1.0' },
        target: { registry: clientFor(pair.target), repository: repo,
          tags: ['1.0'] },
        referrers: true,
      }).finally(() => proxy.intercept(undefined));

      // Assess
      expect(result.status).toBe('copied');
      expect(new Set(asked)).toEqual(new Set([
        ...image.manifests.map((m) => m.digest), artifact.digest]));
      expect(await missingFromRegistry(pair.target, repo, artifact))
        .toEqual([]);
      expect(await manifestStatus(pair.target, repo,
        image.digest.replace(':', '-'))).toBe(404);
      await expectSameImage(pair.source, `${repo}@${artifact.digest}`,
        pair.target, `${repo}@${artifact.digest}`, artifact.digest);
    });
});
