// Manifests, tags and referrers through the registry client, against a
// real registry: exact bytes, media types, digests checked both ways.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  IntegrityError, InvalidInputError, NotFoundError,
} from '../functions/lib/errors.js';
import { RegistryClient } from '../functions/lib/registry/client.js';
import { digestOf } from '../functions/lib/registry/digest.js';
import { staticCredentials } from '../functions/lib/registry/credentials.js';
import { MediaType } from '../functions/lib/registry/types.js';
import {
  createLayout, inspectRaw, pushFixture, pushFixtureRaw, requireBinaries,
  startProxy, startRegistry, stopAll, type Fixture, type OciLayout,
  type TestProxy, type TestRegistry,
} from './harness/index.js';

let layout: OciLayout;
let registry: TestRegistry;
let proxy: TestProxy;
let client: RegistryClient;
let viaProxy: RegistryClient;
const fixtures: Record<string, Fixture> = {};

function clientOf(host: string): RegistryClient {
  return new RegistryClient({
    endpoint: { host, scheme: 'http' },
    credentials: staticCredentials({ [host]: registry.credentials }),
    retry: { attempts: 3, baseDelayMs: 10 },
  });
}

beforeAll(async () => {
  requireBinaries();
  layout = await createLayout();
  registry = await startRegistry({ auth: 'htpasswd' });
  proxy = await startProxy(registry);
  client = clientOf(registry.host);
  viaProxy = clientOf(proxy.host);

  fixtures['OCI index'] = await layout.multiPlatformIndex();
  fixtures['OCI manifest'] = await layout.image();
  fixtures['Docker manifest list'] = await layout.dockerManifestList();
  fixtures['Docker schema 2 manifest'] = await layout.image(
    { format: 'docker' });
  fixtures['OCI manifest without mediaType'] =
    await layout.manifestWithoutMediaType();
  fixtures['OCI artifact with subject'] = await layout.artifact(
    fixtures['OCI manifest']!);
  for (const [name, fixture] of Object.entries(fixtures)) {
    // skopeo 1.9 does not read a Docker schema 2 image from an OCI layout
    if (fixture.mediaType === MediaType.dockerManifest) {
      await pushFixtureRaw(fixture, registry, repositoryOf(name), 'v1');
    } else {
      await pushFixture(fixture, registry, `${repositoryOf(name)}:v1`);
    }
  }
});

afterAll(stopAll);

function repositoryOf(kind: string): string {
  return `kinds/${kind.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
}

/** Answers one request the proxy matches with the given response. */
function answerOnce(match: (method: string, path: string) => boolean,
  status: number, headers: Record<string, string>, body: Uint8Array | string):
  void {
  let used = false;
  proxy.intercept((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (used || !match(req.method ?? 'GET', path)) return false;
    used = true;
    res.writeHead(status, headers);
    res.end(body);
    return true;
  });
}

const KINDS = [
  'OCI index', 'OCI manifest', 'Docker manifest list',
  'Docker schema 2 manifest', 'OCI manifest without mediaType',
  'OCI artifact with subject',
];

describe('RegistryClient.getManifest', () => {
  it.each(KINDS)('returns the exact bytes, digest and media type: %s',
    async (kind) => {
      // Prepare
      const fixture = fixtures[kind]!;
      const raw = await inspectRaw(registry, `${repositoryOf(kind)}:v1`);

      // Act
      const manifest = await client.getManifest(repositoryOf(kind), 'v1');

      // Assess
      expect(Buffer.from(manifest.bytes).equals(raw.bytes)).toBe(true);
      expect(manifest.digest).toBe(fixture.digest);
      expect(manifest.size).toBe(fixture.size);
      expect(manifest.mediaType).toBe(fixture.mediaType);
    });

  it('throws NotFoundError naming the repository and tag for a 404',
    async () => {
      // Act
      const error = await client.getManifest('kinds/none', 'nope')
        .catch((e: unknown) => e);

      // Assess
      expect(error).toBeInstanceOf(NotFoundError);
      expect((error as NotFoundError).status).toBe(404);
      expect((error as Error).message)
        .toContain(`${registry.host}/kinds/none:nope`);
    });

  it('detects bytes that are not the digest asked for', async () => {
    // Prepare
    const fixture = fixtures['OCI manifest']!;
    const other = await client.getManifest(repositoryOf('OCI index'), 'v1');
    answerOnce((m, p) => m === 'GET' && p.endsWith(fixture.digest), 200,
      { 'content-type': MediaType.ociIndex }, other.bytes);

    // Act
    const error = await viaProxy.getManifest(repositoryOf('OCI manifest'),
      fixture.digest).catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as Error).name).toBe('IntegrityError');
    expect((error as Error).message).toContain(fixture.digest);
  });

  it('detects bytes that are not the digest the registry announced',
    async () => {
      // Prepare
      const real = await client.getManifest(repositoryOf('OCI manifest'),
        'v1');
      const changed = Buffer.from(`${Buffer.from(real.bytes)}\n`);
      answerOnce((m, p) => m === 'GET' && p.endsWith('/manifests/v1'), 200,
        { 'content-type': MediaType.ociManifest,
          'docker-content-digest': real.digest }, changed);

      // Act
      const error = await viaProxy.getManifest(repositoryOf('OCI manifest'),
        'v1').catch((e: unknown) => e);

      // Assess
      expect(error).toBeInstanceOf(IntegrityError);
    });

  it('takes the media type from the document when Content-Type is plain ' +
    'JSON and the document has none', async () => {
    // Prepare
    const real = await client.getManifest(
      repositoryOf('OCI manifest without mediaType'), 'v1');
    expect(JSON.parse(Buffer.from(real.bytes).toString()).mediaType)
      .toBeUndefined();
    answerOnce((m, p) => m === 'GET' && p.endsWith('/manifests/v1'), 200,
      { 'content-type': 'application/json' }, real.bytes);

    // Act
    const manifest = await viaProxy.getManifest(
      repositoryOf('OCI manifest without mediaType'), 'v1');

    // Assess
    expect(manifest.mediaType).toBe(MediaType.ociManifest);
    expect(manifest.digest).toBe(real.digest);
  });

  it('refuses malformed JSON with an InvalidInputError', async () => {
    // Prepare
    answerOnce((m, p) => m === 'GET' && p.endsWith('/manifests/broken'),
      200, { 'content-type': MediaType.ociManifest }, '{"schemaVersion": 2,');

    // Act
    const error = await viaProxy.getManifest('kinds/x', 'broken')
      .catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as Error).message).toMatch(/kinds\/x:broken.*not valid JSON/);
  });

  it('refuses a manifest larger than 4 MiB without reading it all',
    async () => {
      // Prepare
      const huge = Buffer.alloc(5 * 1024 * 1024, 0x20);
      answerOnce((m, p) => m === 'GET' && p.endsWith('/manifests/huge'),
        200, { 'content-type': MediaType.ociManifest }, huge);

      // Act
      const error = await viaProxy.getManifest('kinds/x', 'huge')
        .catch((e: unknown) => e);

      // Assess
      expect(error).toBeInstanceOf(InvalidInputError);
      expect((error as Error).message).toContain('4194304 bytes');
    });

  it('refuses a Docker schema 1 manifest, saying why', async () => {
    // Prepare
    answerOnce((m, p) => m === 'GET' && p.endsWith('/manifests/old'), 200,
      { 'content-type':
        'application/vnd.docker.distribution.manifest.v1+prettyjws' },
      '{"schemaVersion": 1, "fsLayers": []}');

    // Act
    const error = await viaProxy.getManifest('kinds/x', 'old')
      .catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as Error).message).toContain('schema 1');
  });
});

describe('RegistryClient.headManifest', () => {
  it.each(KINDS)('gives the digest, media type and size: %s',
    async (kind) => {
      // Prepare
      const fixture = fixtures[kind]!;

      // Act
      const head = await client.headManifest(repositoryOf(kind), 'v1');

      // Assess
      expect(head).toEqual({ digest: fixture.digest,
        mediaType: fixture.mediaType, size: fixture.size });
    });

  it('gives undefined for a tag the registry does not have', async () => {
    // Act
    const head = await client.headManifest(repositoryOf('OCI index'),
      'absent');

    // Assess
    expect(head).toBeUndefined();
  });

  it('falls back to a GET when the HEAD says no digest', async () => {
    // Prepare
    const fixture = fixtures['OCI manifest']!;
    answerOnce((m) => m === 'HEAD', 200,
      { 'content-type': MediaType.ociManifest }, '');

    // Act
    const head = await viaProxy.headManifest(repositoryOf('OCI manifest'),
      'v1');

    // Assess
    expect(head?.digest).toBe(fixture.digest);
    expect(proxy.requests().filter((r) => r.method === 'GET'))
      .not.toHaveLength(0);
  });
});

describe('RegistryClient.putManifest', () => {
  it.each(KINDS)('stores the bytes unchanged: %s', async (kind) => {
    // Prepare
    const fixture = fixtures[kind]!;
    const from = repositoryOf(kind);
    const to = `copies/${from.slice('kinds/'.length)}`;
    const source = { registry: client, repository: from };
    for (const blob of fixture.blobs) {
      await client.pushBlob(to, blob, source, { mountFrom: [from] });
    }
    const manifests = [];
    for (const descriptor of [...fixture.manifests].reverse()) {
      manifests.push(await client.getManifest(from, descriptor.digest));
    }

    // Act
    for (const manifest of manifests) {
      await client.putManifest(to, manifest.digest, manifest);
    }
    await client.putManifest(to, 'v1', manifests.at(-1)!);

    // Assess
    const raw = await inspectRaw(registry, `${to}:v1`);
    expect(raw.digest).toBe(fixture.digest);
    expect(await client.headManifest(to, 'v1')).toEqual({
      digest: fixture.digest, mediaType: fixture.mediaType,
      size: fixture.size });
  });

  it('refuses bytes that are not their digest before sending them',
    async () => {
      // Prepare
      const real = await client.getManifest(repositoryOf('OCI manifest'),
        'v1');
      const forged = { ...real, bytes: Buffer.from(`${Buffer.from(
        real.bytes)} `) };
      await registry.resetRequests();

      // Act
      const error = await client.putManifest('kinds/forged', 'v1', forged)
        .catch((e: unknown) => e);

      // Assess
      expect(error).toBeInstanceOf(IntegrityError);
      expect((await registry.requests()).filter((r) => r.method === 'PUT'))
        .toEqual([]);
    });

  it('refuses to push under a digest other than the manifest\'s',
    async () => {
      // Prepare
      const real = await client.getManifest(repositoryOf('OCI manifest'),
        'v1');
      const other = digestOf(Buffer.from('other'));

      // Act
      const put = client.putManifest('kinds/forged', other, real);

      // Assess
      await expect(put).rejects.toBeInstanceOf(IntegrityError);
    });
});

describe('RegistryClient.listTags', () => {
  it('lists every tag, following relative and absolute Link headers',
    async () => {
      // Prepare: Distribution 2.8 does not paginate, so the proxy serves
      // the pages, as GHCR would
      const repository = repositoryOf('OCI manifest');
      const path = `/v2/${repository}/tags/list`;
      const pages: Record<string, [string[], string | undefined]> = {
        '': [['a', 'b'], `<${path}?last=b&n=2>; rel="next"`],
        '?last=b&n=2': [['c', 'd'],
          `<${proxy.url}${path}?last=d&n=2>; rel="next"`],
        '?last=d&n=2': [['e'], undefined],
      };
      proxy.resetRequests();
      proxy.intercept((req, res) => {
        const page = pages[req.url!.slice(path.length)];
        if (!req.url!.startsWith(path) || !page) return false;
        res.writeHead(200, { 'content-type': 'application/json',
          ...(page[1] ? { link: page[1] } : {}) });
        res.end(JSON.stringify({ name: repository, tags: page[0] }));
        return true;
      });

      // Act
      const listed = await viaProxy.listTags(repository);

      // Assess
      expect(listed).toEqual(['a', 'b', 'c', 'd', 'e']);
      expect(proxy.requests().map((r) => r.url)).toEqual([path,
        `${path}?last=b&n=2`, `${path}?last=d&n=2`]);
    });

  it('lists the tags the registry holds', async () => {
    // Prepare
    const real = await client.getManifest(repositoryOf('OCI manifest'),
      'v1');
    await client.putManifest(repositoryOf('OCI manifest'), 'one', real);
    await client.putManifest(repositoryOf('OCI manifest'), 'two', real);

    // Act
    const tags = await client.listTags(repositoryOf('OCI manifest'));

    // Assess
    expect(tags.sort()).toEqual(['one', 'two', 'v1']);
  });

  it('gives [] for a repository the registry does not have', async () => {
    // Act
    const tags = await client.listTags('kinds/never-pushed');

    // Assess
    expect(tags).toEqual([]);
  });
});

describe('RegistryClient.referrers', () => {
  it('gives undefined where the registry lacks the referrers API',
    async () => {
      // Act
      const found = await client.referrers(repositoryOf('OCI manifest'),
        fixtures['OCI manifest']!.digest);

      // Assess
      expect(found).toBeUndefined();
    });

  it('gives the descriptors of the index the referrers API answers',
    async () => {
      // Prepare
      const subject = fixtures['OCI manifest']!;
      const artifact = fixtures['OCI artifact with subject']!;
      const descriptor = { mediaType: artifact.mediaType,
        digest: artifact.digest, size: artifact.size,
        artifactType: 'application/vnd.example.sbom.v1+json' };
      answerOnce((m, p) => m === 'GET' && p.includes('/referrers/'), 200,
        { 'content-type': MediaType.ociIndex },
        JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex,
          manifests: [descriptor] }));

      // Act
      const found = await viaProxy.referrers(repositoryOf('OCI manifest'),
        subject.digest);

      // Assess
      expect(found).toEqual([descriptor]);
    });
});
