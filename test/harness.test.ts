// Self-tests of the test harness: if these fail, every other test's
// verdict is in doubt.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  blobGets, copyToLayout, createLayout, inspectRaw, missingFromRegistry,
  pushFixture, registryFetch, requireBinaries, startProxy, startRegistry,
  stopAll, type Fixture, type OciLayout, type TestRegistry,
} from './harness/index.js';

const sha256 = (bytes: Uint8Array) =>
  `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

let layout: OciLayout;
let image: Fixture;

beforeAll(async () => {
  requireBinaries();
  layout = await createLayout();
  image = await layout.image({ ref: 'image' });
});

afterAll(stopAll);

describe('requireBinaries', () => {
  it('names the apt-get command when a program is missing', () => {
    // Act
    const act = () => requireBinaries(['skopeo'], () => undefined);

    // Assess
    expect(act).toThrow(/apt-get install -y skopeo/);
  });
});

describe('startRegistry', () => {
  describe('with token auth', () => {
    let registry: TestRegistry;
    beforeAll(async () => {
      registry = await startRegistry({ auth: 'token' });
    });

    it('accepts a skopeo push with the right credentials', async () => {
      // Act
      await pushFixture(image, registry, 'team/app:v1');

      // Assess
      const raw = await inspectRaw(registry, 'team/app:v1');
      expect(raw.digest).toBe(image.digest);
      const asked = registry.tokenIssuer!.requests()
        .filter((r) => r.status === 200);
      expect(asked.some((r) => r.authorization === 'basic' &&
        r.scopes.includes('repository:team/app:pull,push'))).toBe(true);
    });

    it('refuses a push with a wrong password', async () => {
      // Act
      const push = pushFixture(image, registry, 'team/app:wrong',
        { username: registry.credentials.username, password: 'wrong' });

      // Assess
      await expect(push).rejects.toThrow(/skopeo/);
      const refused = registry.tokenIssuer!.requests()
        .filter((r) => r.status === 401);
      expect(refused.length).toBeGreaterThan(0);
    });

    it('fails the next token requests when told to, then issues again',
      async () => {
        // Prepare
        const issuer = registry.tokenIssuer!;
        issuer.resetRequests();
        issuer.failNext(1, { status: 503, retryAfter: '2' });
        const ask = () => fetch(`${issuer.realm}?service=` +
          encodeURIComponent(issuer.service));

        // Act
        const first = await ask();
        const second = await ask();

        // Assess
        expect([first.status, first.headers.get('retry-after')])
          .toEqual([503, '2']);
        expect(second.status).toBe(200);
        expect(issuer.requests().map((r) => r.status)).toEqual([503, 200]);
      });

    it('answers insufficient_scope where the grant policy denies pull',
      async () => {
        // Prepare
        await pushFixture(image, registry, 'team/secret:v1');
        registry.tokenIssuer!.setGrantPolicy(
          (r) => r.name === 'team/secret' ? [] : r.actions);

        // Act
        const response = await registryFetch(registry,
          `/v2/team/secret/manifests/v1`, { actions: 'pull' });
        registry.tokenIssuer!.setGrantPolicy();

        // Assess
        expect(response.status).toBe(401);
        expect(response.headers.get('www-authenticate'))
          .toMatch(/error="insufficient_scope"/);
      });
  });

  it('lets anonymous clients pull only when anonymousPull is set',
    async () => {
      // Prepare
      const [open, closed] = await Promise.all([
        startRegistry({ auth: 'token', token: { anonymousPull: true } }),
        startRegistry({ auth: 'token' }),
      ]);
      await pushFixture(image, open, 'public/app:v1');
      await pushFixture(image, closed, 'private/app:v1');

      // Act
      const pulled = await inspectRaw(open, 'public/app:v1', null);
      const refused = inspectRaw(closed, 'private/app:v1', null);

      // Assess
      expect(pulled.digest).toBe(image.digest);
      await expect(refused).rejects.toThrow(/unauthorized|denied/i);
      expect(closed.tokenIssuer!.requests().at(-1)).toMatchObject(
        { authorization: 'none', status: 200, granted: [] });
      await Promise.all([open.stop(), closed.stop()]);
    });

  describe('with htpasswd auth', () => {
    let registry: TestRegistry;
    beforeAll(async () => {
      registry = await startRegistry({ auth: 'htpasswd' });
    });

    it('accepts a skopeo push with the right credentials', async () => {
      // Act
      await pushFixture(image, registry, 'backup/app:v1');

      // Assess
      const raw = await inspectRaw(registry, 'backup/app:v1');
      expect(raw.digest).toBe(image.digest);
    });

    it('refuses a push with a wrong password', async () => {
      // Act
      const push = pushFixture(image, registry, 'backup/app:wrong',
        { username: registry.credentials.username, password: 'wrong' });

      // Assess
      await expect(push).rejects.toThrow(/skopeo/);
      const log = await registry.requests();
      expect(log.some((r) => r.status === 401)).toBe(true);
    });
  });

  it('logs each request the registry answered, and forgets on reset',
    async () => {
      // Prepare
      const registry = await startRegistry();
      await pushFixture(image, registry, 'count/app:v1');
      await registry.resetRequests();

      // Act
      for (let i = 0; i < 3; i++) {
        const response = await registryFetch(registry,
          `/v2/count/app/blobs/${image.layers![0]!.digest}`,
          { method: 'HEAD' });
        expect(response.status).toBe(200);
      }
      const logged = await registry.requests();
      await registry.resetRequests();

      // Assess
      expect(logged.map((r) => `${r.method} ${r.path} ${r.status}`))
        .toEqual(Array(3).fill(
          `HEAD /v2/count/app/blobs/${image.layers![0]!.digest} 200`));
      expect(await registry.requests()).toEqual([]);
      await registry.stop();
    });

  it('stops the registry process', async () => {
    // Prepare
    const registry = await startRegistry();

    // Act
    await registry.stop();

    // Assess
    await expect(fetch(`${registry.url}/v2/`)).rejects.toThrow();
  });
});

describe('startProxy', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ auth: 'token' });
    await pushFixture(image, registry, 'proxied/app:v1');
  });

  it('redirects blob GETs to a storage server that gets no Authorization',
    async () => {
      // Prepare
      const proxy = await startProxy(registry, { redirectBlobs: true });
      const layer = image.layers![0]!;

      // Act
      const redirect = await registryFetch(proxy,
        `/v2/proxied/app/blobs/${layer.digest}`, { actions: 'pull' });
      const location = redirect.headers.get('location')!;
      const download = await fetch(location);
      const bytes = new Uint8Array(await download.arrayBuffer());

      // Assess
      expect(redirect.status).toBe(307);
      expect(new URL(location).host).not.toBe(proxy.host);
      expect(sha256(bytes)).toBe(layer.digest);
      expect(proxy.storageRequests()).toHaveLength(1);
      expect(proxy.storageRequests()[0]!.authorization).toBe(false);
      await proxy.stop();
    });

  it('serves a Range of a blob from storage with 206', async () => {
    // Prepare
    const proxy = await startProxy(registry, { redirectBlobs: true });
    const layer = image.layers![0]!;
    const whole = await readFile(layout.blobPath(layer.digest));
    const redirect = await registryFetch(proxy,
      `/v2/proxied/app/blobs/${layer.digest}`, { actions: 'pull' });

    // Act
    const part = await fetch(redirect.headers.get('location')!,
      { headers: { range: 'bytes=100-' } });
    const bytes = Buffer.from(await part.arrayBuffer());

    // Assess
    expect(part.status).toBe(206);
    expect(bytes.equals(whole.subarray(100))).toBe(true);
    await proxy.stop();
  });

  it('answers injected 503s with Retry-After, then forwards', async () => {
    // Prepare
    const proxy = await startProxy(registry);
    proxy.failNext(2, { status: 503, retryAfter: '1' });

    // Act
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      const response = await fetch(`${proxy.url}/v2/`);
      statuses.push([response.status,
        response.headers.get('retry-after')]);
    }

    // Assess
    expect(statuses).toEqual([[503, '1'], [503, '1'], [401, null]]);
    expect(proxy.requests().map((r) => r.outcome))
      .toEqual(['fault', 'fault', 'forwarded']);
    await proxy.stop();
  });

  it('cuts the next blob body after the given number of bytes, once',
    async () => {
      // Prepare
      const proxy = await startProxy(registry);
      const layer = image.layers![1]!;
      proxy.cutNextBlob(1000, { digest: layer.digest });

      // Act
      const first = await registryFetch(proxy,
        `/v2/proxied/app/blobs/${layer.digest}`, { actions: 'pull' });
      const cut = first.arrayBuffer();
      await expect(cut).rejects.toThrow();
      const second = await registryFetch(proxy,
        `/v2/proxied/app/blobs/${layer.digest}`, { actions: 'pull' });
      const bytes = new Uint8Array(await second.arrayBuffer());

      // Assess
      expect(sha256(bytes)).toBe(layer.digest);
      const answered = proxy.requests()
        .filter((r) => blobGetRecord(r) && r.status === 200);
      expect(answered.map((r) => r.outcome)).toEqual(['cut', 'forwarded']);
      await proxy.stop();
    });

  it('rewrites upload Locations so the client stays on the proxy',
    async () => {
      // Prepare
      const proxy = await startProxy(registry);

      // Act
      const response = await registryFetch(proxy,
        '/v2/proxied/app/blobs/uploads/', { method: 'POST' });

      // Assess
      expect(response.status).toBe(202);
      expect(new URL(response.headers.get('location')!, proxy.url).host)
        .toBe(proxy.host);
      await proxy.stop();
    });
});

const blobGetRecord = (r: { method: string; url: string }) =>
  blobGets()({ method: r.method, path: r.url.split('?')[0]!, url: r.url,
    headers: {} });

describe('OCI layout fixtures', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ auth: 'htpasswd' });
  });

  const cases: [string, () => Promise<Fixture>][] = [
    ['a single-platform image', () => layout.image()],
    ['a multi-platform index with attestations',
      () => layout.multiPlatformIndex()],
    ['a Docker manifest list', () => layout.dockerManifestList()],
    ['an OCI manifest without mediaType',
      () => layout.manifestWithoutMediaType()],
    ['an artifact with a subject', () => layout.artifact(image)],
    ['a nested index', () => layout.nestedIndex()],
  ];

  for (const [name, build] of cases) {
    it(`pushes ${name} with every manifest and blob intact`, async () => {
      // Prepare
      const fixture = await build();
      const repository = `fixtures/${fixture.ref}`;

      // Act
      await pushFixture(fixture, registry, `${repository}:v1`);

      // Assess
      const raw = await inspectRaw(registry, `${repository}:v1`);
      expect(raw.digest).toBe(fixture.digest);
      expect(await missingFromRegistry(registry, repository, fixture))
        .toEqual([]);
    });
  }

  it('copies a pushed multi-platform index back into a fresh layout',
    async () => {
      // Prepare
      const fixture = await layout.multiPlatformIndex();
      await pushFixture(fixture, registry, 'fixtures/back:v1');

      // Act
      const copied = await copyToLayout(registry, 'fixtures/back:v1');

      // Assess
      const index = JSON.parse(await readFile(
        `${copied.layoutDir}/index.json`, 'utf8')) as
        { manifests: { digest: string }[] };
      expect(index.manifests.map((m) => m.digest)).toEqual([fixture.digest]);
      await copied.remove();
    });

  it('shares base layers between two images', async () => {
    // Act
    const { base, images } = await layout.imagesSharingBase();

    // Assess
    for (const fixture of images) {
      expect(fixture.layers!.slice(0, base.length)).toEqual(base);
    }
    expect(images[0].layers!.at(-1)).not.toEqual(images[1].layers!.at(-1));
  });

  it('writes the same blobs again from the same seed', async () => {
    // Prepare
    const again = await createLayout({ seed: layout.seed, logSeed: false });

    // Act
    const first = await again.image();

    // Assess
    const fresh = await createLayout({ seed: layout.seed, logSeed: false });
    expect((await fresh.image()).digest).toBe(first.digest);
    await again.remove();
    await fresh.remove();
  });
});
