// copyImage between real registries: a GHCR-like source with token auth
// and a target with htpasswd, every image kind the engine must copy byte
// for byte, and the shortcuts it takes when the target has the image.

import { readFile } from 'node:fs/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { copyImage } from '../functions/lib/copy/engine.js';
import type { CopyEvent, CopyRequest } from '../functions/lib/copy/types.js';
import {
  IntegrityError, InterruptedError, NotFoundError,
} from '../functions/lib/errors.js';
import type { RegistryClient } from '../functions/lib/registry/client.js';
import {
  LocalDigestStore,
} from '../functions/lib/store/local-digest-store.js';
import {
  OciMediaType, createLayout, missingFromRegistry, pushFixture,
  onStopAll, pushFixtureRaw, pushRaw, registryFetch, requireBinaries,
  stopAll, type Fixture, type OciLayout,
} from './harness/index.js';
import {
  clientFor, corruptBlob, expectSameImage, foreignLayerImage,
  manifestStatus, startPair, tempDir, type Pair,
} from './copy-setup.js';

let pair: Pair;
let layout: OciLayout;
let source: RegistryClient;
let target: RegistryClient;
let counter = 0;


beforeAll(async () => {
  requireBinaries();
  [pair, layout] = await Promise.all([startPair(), createLayout()]);
  source = clientFor(pair.source);
  target = clientFor(pair.target);
});

afterAll(stopAll);

/** A fresh repository name per test, so no test sees another's blobs. */
function repository(label: string): string {
  return `org/${label}-${++counter}`;
}

/** Pushes a fixture to the source as REPO:TAG. */
async function publish(fixture: Fixture, repo: string, tag = 'v1'):
  Promise<void> {
  await pushFixture(fixture, pair.source, `${repo}:${tag}`);
}

function request(repo: string, reference: string, tags: string[],
  extra: Partial<CopyRequest> = {}): CopyRequest {
  return {
    source: { registry: source, repository: repo, reference },
    target: { registry: target, repository: repo, tags },
    ...extra,
  };
}

describe('copyImage', () => {
  describe('copies each kind of image byte for byte', () => {
    it('copies a multi-platform OCI index with attestation manifests',
      async () => {
        // Prepare
        const fixture = await layout.multiPlatformIndex();
        const repo = repository('index');
        await publish(fixture, repo);

        // Act
        const result = await copyImage(request(repo, 'v1', ['v1']));

        // Assess
        expect(result.status).toBe('copied');
        expect(result.digest).toBe(fixture.digest);
        expect(result.manifestsPushed).toBe(fixture.manifests.length);
        expect(result.blobs.uploaded).toBe(fixture.blobs.length);
        expect(result.bytesUploaded).toBe(
          fixture.blobs.reduce((sum, blob) => sum + blob.size, 0));
        expect(await missingFromRegistry(pair.target, repo, fixture))
          .toEqual([]);
        await expectSameImage(pair.source, `${repo}:v1`, pair.target,
          `${repo}:v1`, fixture.digest);
      });

    it('uploads a layer shared by several platforms once', async () => {
      // Prepare
      const { diffId: _, ...base } = await layout.addRandomLayer(4096);
      const fixture = await layout.multiPlatformIndex({ baseLayers: [base],
        platforms: [{ architecture: 'amd64', os: 'linux' },
          { architecture: 'arm64', os: 'linux' },
          { architecture: 'ppc64le', os: 'linux' }] });
      const repo = repository('shared');
      await publish(fixture, repo);
      await pair.target.resetRequests();

      // Act
      const result = await copyImage(request(repo, 'v1', ['v1']));

      // Assess
      expect(result.blobs.uploaded).toBe(fixture.blobs.length);
      const uploads = (await pair.target.requests()).filter((r) =>
        r.method === 'PUT' && r.query.get('digest') === base.digest);
      expect(uploads.map((r) => r.status)).toEqual([201]);
      await expectSameImage(pair.source, `${repo}:v1`, pair.target,
        `${repo}:v1`, fixture.digest);
    });

    it('copies a Docker manifest list and its schema 2 manifests',
      async () => {
        // Prepare
        const fixture = await layout.dockerManifestList();
        const repo = repository('list');
        await publish(fixture, repo);

        // Act
        const result = await copyImage(request(repo, 'v1', ['v1']));

        // Assess
        expect(result.status).toBe('copied');
        expect(await missingFromRegistry(pair.target, repo, fixture))
          .toEqual([]);
        await expectSameImage(pair.source, `${repo}:v1`, pair.target,
          `${repo}:v1`, fixture.digest);
      });

    it('copies a single OCI manifest that has no mediaType field',
      async () => {
        // Prepare
        const fixture = await layout.manifestWithoutMediaType();
        const repo = repository('bare');
        await publish(fixture, repo);

        // Act
        const result = await copyImage(request(repo, 'v1', ['v1']));

        // Assess
        expect(result.status).toBe('copied');
        expect(result.manifestsPushed).toBe(1);
        await expectSameImage(pair.source, `${repo}:v1`, pair.target,
          `${repo}:v1`, fixture.digest);
      });

    it('copies an index nested in an index, children first', async () => {
      // Prepare
      const fixture = await layout.nestedIndex();
      const repo = repository('nested');
      await publish(fixture, repo);
      const pushed: string[] = [];
      const onEvent = (event: CopyEvent) => {
        if (event.type === 'manifest-pushed') pushed.push(event.digest);
      };

      // Act
      const result = await copyImage(request(repo, 'v1', ['v1'],
        { onEvent }));

      // Assess
      expect(result.status).toBe('copied');
      expect(pushed.at(-1)).toBe(fixture.digest);
      expect(new Set(pushed)).toEqual(
        new Set(fixture.manifests.map((m) => m.digest)));
      expect(await missingFromRegistry(pair.target, repo, fixture))
        .toEqual([]);
      await expectSameImage(pair.source, `${repo}:v1`, pair.target,
        `${repo}:v1`, fixture.digest, { skopeoCopy: false });
    });

    it('copies by digest when no tag is asked for, leaving no tag',
      async () => {
        // Prepare
        const fixture = await layout.image();
        const repo = repository('digest');
        await publish(fixture, repo);

        // Act
        const result = await copyImage(request(repo, fixture.digest, []));

        // Assess
        expect(result.status).toBe('copied');
        expect(await manifestStatus(pair.target, repo, fixture.digest))
          .toBe(200);
        expect(await manifestStatus(pair.target, repo, 'v1')).toBe(404);
      });
  });

  describe('referrers', () => {
    it('copies an artifact whose subject is the image, found through ' +
      'the referrers tag schema, and that tag', async () => {
      // Prepare: Distribution 2.8 has no referrers API; an OCI 1.1 client
      // then lists referrers in an index tagged sha256-<hex>
      const image = await layout.image();
      const repo = repository('signed');
      await publish(image, repo);
      const artifact = await layout.artifact(image);
      const referrersTag = image.digest.replace(':', '-');
      const tagIndex = await layout.addManifest({
        schemaVersion: 2,
        mediaType: OciMediaType.index,
        manifests: [artifact.descriptor],
      }, OciMediaType.index);
      await pushFixture(artifact, pair.source,
        `${repo}@${artifact.digest}`);
      await pushRaw(pair.source, repo, [], [{
        reference: referrersTag, mediaType: OciMediaType.index,
        bytes: Buffer.from(await readBlob(tagIndex.digest)),
      }]);

      // Act
      const result = await copyImage(request(repo, 'v1', ['v1'],
        { referrers: true }));

      // Assess
      expect(result.status).toBe('copied');
      expect(await missingFromRegistry(pair.target, repo, artifact))
        .toEqual([]);
      await expectSameImage(pair.source, `${repo}:${referrersTag}`,
        pair.target, `${repo}:${referrersTag}`, tagIndex.digest);
      await expectSameImage(pair.source, `${repo}@${artifact.digest}`,
        pair.target, `${repo}@${artifact.digest}`, artifact.digest);
    });

    it('copies no referrer when referrers are not asked for', async () => {
      // Prepare
      const image = await layout.image();
      const repo = repository('unsigned');
      await publish(image, repo);
      const artifact = await layout.artifact(image);
      await pushFixture(artifact, pair.source,
        `${repo}@${artifact.digest}`);

      // Act
      await copyImage(request(repo, 'v1', ['v1']));

      // Assess
      expect(await manifestStatus(pair.target, repo, artifact.digest))
        .toBe(404);
    });
  });

  it('leaves non-distributable layers out and reports them', async () => {
    // Prepare
    const { fixture, foreign } = await foreignLayerImage(layout);
    const repo = repository('foreign');
    await pushFixtureRaw(fixture, pair.source, repo, 'v1');

    // Act
    const result = await copyImage(request(repo, 'v1', ['v1']));

    // Assess
    expect(result.status).toBe('copied');
    expect(result.foreignLayers).toEqual([foreign.digest]);
    expect(result.blobs).toMatchObject({ foreign: 1,
      uploaded: fixture.blobs.length });
    expect(await missingFromRegistry(pair.target, repo, fixture))
      .toEqual([]);
    expect(await missingFromRegistry(pair.target, repo,
      { manifests: [], blobs: [foreign] })).toHaveLength(1);

    // skopeo would fetch the foreign layer from its URL: compare bytes only
    await expectSameImage(pair.source, `${repo}:v1`, pair.target,
      `${repo}:v1`, fixture.digest, { skopeoCopy: false });
  });

  describe('the digest store', () => {
    it('learns where blobs are only once a manifest naming them is pushed',
      async () => {
        // Prepare
        const fixture = await layout.image();
        const repo = repository('remember');
        await publish(fixture, repo);
        const store = await localStore();
        const where = (digest: string) =>
          store.locate(pair.target.host, digest);

        // Act
        await copyImage(request(repo, 'v1', ['v1'],
          { store, deadline: Date.now() - 1 }));
        const before = await Promise.all(fixture.blobs.map((b) =>
          where(b.digest)));
        await copyImage(request(repo, 'v1', ['v1'], { store }));
        const after = await Promise.all(fixture.blobs.map((b) =>
          where(b.digest)));

        // Assess
        expect(before.flat()).toEqual([]);
        expect(after).toEqual(fixture.blobs.map(() => [repo]));
      });

    it('forgets a location whose mount the target refuses, and uploads ' +
      'the blob', async () => {
        // Prepare: the store believes a repository holds what it never had
        const fixture = await layout.image();
        const repo = repository('stale');
        await publish(fixture, repo);
        const store = await localStore();
        const digests = fixture.blobs.map((b) => b.digest);
        await store.remember(pair.target.host, 'org/never-had-it', digests);
        const refused: string[] = [];
        const onEvent = (event: CopyEvent) => {
          if (event.type === 'mount-refused') refused.push(event.digest);
        };

        // Act
        const result = await copyImage(request(repo, 'v1', ['v1'],
          { store, onEvent }));

        // Assess
        expect(result.blobs).toMatchObject({ mounted: 0,
          uploaded: digests.length });
        expect(refused.sort()).toEqual([...digests].sort());
        for (const digest of digests) {
          expect(await store.locate(pair.target.host, digest))
            .toEqual([repo]);
        }
        await expectSameImage(pair.source, `${repo}:v1`, pair.target,
          `${repo}:v1`, fixture.digest);
      });
  });

  describe('when the target has the image', () => {
    it('is up to date after one HEAD per tag, without asking the source ' +
      'when the caller knows the digest', async () => {
      // Prepare
      const fixture = await layout.multiPlatformIndex();
      const repo = repository('again');
      await publish(fixture, repo, 'v1');
      await publish(fixture, repo, 'latest');
      await copyImage(request(repo, 'v1', ['v1', 'latest']));
      await Promise.all([pair.source.resetRequests(),
        pair.target.resetRequests()]);

      // Act
      const result = await copyImage({
        ...request(repo, 'v1', ['v1', 'latest'], { referrers: true }),
        source: { registry: source, repository: repo, reference: 'v1',
          digest: fixture.digest },
      });

      // Assess
      expect(result.status).toBe('up-to-date');
      expect(await pair.source.requests()).toEqual([]);
      const sent = (await pair.target.requests())
        .filter((r) => r.status !== 401)
        .map((r) => `${r.method} ${r.path}`);
      expect(sent.sort()).toEqual([
        `HEAD /v2/${repo}/manifests/latest`,
        `HEAD /v2/${repo}/manifests/v1`,
      ]);
    });

    it('pushes only the missing tag, reading the manifest from the ' +
      'target', async () => {
      // Prepare
      const fixture = await layout.multiPlatformIndex();
      const repo = repository('retag');
      await publish(fixture, repo, 'v1');
      await copyImage(request(repo, 'v1', ['v1']));
      await Promise.all([pair.source.resetRequests(),
        pair.target.resetRequests()]);

      // Act
      const result = await copyImage(request(repo, 'v1', ['v1', 'stable']));

      // Assess
      expect(result.status).toBe('copied');
      expect(result.manifestsPushed).toBe(0);
      const fromSource = (await pair.source.requests())
        .filter((r) => r.status !== 401);
      expect(fromSource.map((r) => `${r.method} ${r.path}`))
        .toEqual([`HEAD /v2/${repo}/manifests/v1`]);
      const puts = (await pair.target.requests())
        .filter((r) => r.method === 'PUT' || r.method === 'POST');
      expect(puts.map((r) => `${r.method} ${r.path}`))
        .toEqual([`PUT /v2/${repo}/manifests/stable`]);
      await expectSameImage(pair.source, `${repo}:v1`, pair.target,
        `${repo}:stable`, fixture.digest);
    });

    it('skips blobs the target has, copying the rest', async () => {
      // Prepare: a new image on an old base, the old image copied first
      const { images: [first, second] } = await layout.imagesSharingBase();
      const repo = repository('rebase');
      await publish(first, repo, 'v1');
      await publish(second, repo, 'v2');
      await copyImage(request(repo, 'v1', ['v1']));

      // Act
      const result = await copyImage(request(repo, 'v2', ['v2']));

      // Assess
      const shared = first.blobs.filter((blob) =>
        second.blobs.some((other) => other.digest === blob.digest));
      expect(shared.length).toBeGreaterThan(0);
      expect(result.blobs.skipped).toBe(shared.length);
      expect(result.blobs.uploaded).toBe(second.blobs.length - shared.length);
      await expectSameImage(pair.source, `${repo}:v2`, pair.target,
        `${repo}:v2`, second.digest);
    });
  });

  describe('stopping early', () => {
    it('after its deadline copies no further blob and pushes no tag; ' +
      'the next call finishes', async () => {
      // Prepare
      const fixture = await layout.multiPlatformIndex();
      const repo = repository('deadline');
      await publish(fixture, repo);

      // Act
      const stopped = await copyImage(request(repo, 'v1', ['v1'],
        { deadline: Date.now() - 1 }));
      const finished = await copyImage(request(repo, 'v1', ['v1']));

      // Assess
      expect(stopped.status).toBe('incomplete');
      expect(stopped.blobs.uploaded).toBe(0);
      expect(finished.status).toBe('copied');
      await expectSameImage(pair.source, `${repo}:v1`, pair.target,
        `${repo}:v1`, fixture.digest);
    });

    it('leaves no tag when stopped by its deadline', async () => {
      // Prepare
      const fixture = await layout.image();
      const repo = repository('no-tag');
      await publish(fixture, repo);

      // Act
      await copyImage(request(repo, 'v1', ['v1'],
        { deadline: Date.now() - 1 }));

      // Assess
      expect(await manifestStatus(pair.target, repo, 'v1')).toBe(404);
      expect(await manifestStatus(pair.target, repo, fixture.digest))
        .toBe(404);
    });

    it('rejects with InterruptedError when aborted', async () => {
      // Prepare
      const fixture = await layout.image();
      const repo = repository('abort');
      await publish(fixture, repo);
      const controller = new AbortController();
      controller.abort();

      // Act
      const copy = copyImage(request(repo, 'v1', ['v1'],
        { signal: controller.signal }));

      // Assess
      await expect(copy).rejects.toBeInstanceOf(InterruptedError);
    });
  });

  describe('a broken source', () => {
    it('fails with IntegrityError on a blob whose bytes do not match its ' +
      'digest, and pushes no tag', async () => {
      // Prepare
      const fixture = await layout.image();
      const repo = repository('corrupt');
      await publish(fixture, repo);
      await corruptBlob(pair.source, fixture.layers![0]!.digest);

      // Act
      const copy = copyImage(request(repo, 'v1', ['v1']));

      // Assess
      await expect(copy).rejects.toBeInstanceOf(IntegrityError);
      expect(await manifestStatus(pair.target, repo, 'v1')).toBe(404);
      expect(await manifestStatus(pair.target, repo, fixture.digest))
        .toBe(404);
    });

    it('fails with NotFoundError on a missing blob, naming its digest, ' +
      'and pushes no tag', async () => {
      // Prepare
      const fixture = await layout.multiPlatformIndex();
      const repo = repository('missing');
      await publish(fixture, repo);
      const lost = fixture.blobs.at(-1)!.digest;
      const deleted = await registryFetch(pair.source,
        `/v2/${repo}/blobs/${lost}`, { method: 'DELETE', actions: '*' });
      expect(deleted.status).toBe(202);

      // Act
      const copy = copyImage(request(repo, 'v1', ['v1']));

      // Assess
      await expect(copy).rejects.toBeInstanceOf(NotFoundError);
      await expect(copy).rejects.toThrow(lost);
      expect(await manifestStatus(pair.target, repo, 'v1')).toBe(404);
      expect(await manifestStatus(pair.target, repo, fixture.digest))
        .toBe(404);
    });
  });
});

/** A local digest store in a fresh folder, closed after the file. */
async function localStore(): Promise<LocalDigestStore> {
  const store = new LocalDigestStore({ dir: await tempDir('digests') });
  onStopAll(() => store.close());
  return store;
}

function readBlob(digest: string): Promise<Buffer> {
  return readFile(layout.blobPath(digest));
}
