// Blobs through the registry client, between real registries: streaming
// uploads, mounts (201, 202, refused), redirects to a storage host,
// retries, resumed downloads, digest checks and chunked uploads.

import { createHash } from 'node:crypto';

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import {
  IntegrityError, TransientError,
} from '../functions/lib/errors.js';
import { RegistryClient, type RegistryClientOptions }
  from '../functions/lib/registry/client.js';
import { staticCredentials } from '../functions/lib/registry/credentials.js';
import type {
  BlobSource, Descriptor, Logger,
} from '../functions/lib/registry/types.js';
import {
  createLayout, pushFixture, pushRaw, registryFetch,
  requestsTo, requireBinaries, sha256Digest, startProxy, startRegistry,
  stopAll, type Fixture, type RegistryRequest, type TestProxy,
  type TestRegistry,
} from './harness/index.js';

let source: TestRegistry;
let sourceProxy: TestProxy;
let target: TestRegistry;
let targetProxy: TestProxy;
let image: Fixture;
/** The image's large layer (about 300 KB). */
let layer: Descriptor;
let repositoryCounter = 0;

beforeAll(async () => {
  requireBinaries();
  const layout = await createLayout();
  image = await layout.image({ layerSizes: [300_000, 2048] });
  layer = image.layers![0]!;

  source = await startRegistry({ auth: 'token', name: 'ghcr-like' });
  sourceProxy = await startProxy(source);
  target = await startRegistry({ auth: 'htpasswd', name: 'backup' });
  targetProxy = await startProxy(target);
  await pushFixture(image, source, 'org/app:v1');
});

beforeEach(async () => {
  sourceProxy.clearFaults();
  sourceProxy.intercept();
  sourceProxy.redirectBlobs(false);
  sourceProxy.resetRequests();
  targetProxy.clearFaults();
  targetProxy.intercept();
  targetProxy.resetRequests();
  await target.resetRequests();
});

afterAll(stopAll);

/** A repository name no other test uses. */
function freshRepository(): string {
  return `backup/app-${++repositoryCounter}`;
}

function clientOf(registry: { host: string }, credentials: {
  username: string; password: string }, options:
  Partial<RegistryClientOptions> = {}): RegistryClient {
  return new RegistryClient({
    endpoint: { host: registry.host, scheme: 'http' },
    credentials: staticCredentials({ [registry.host]: credentials }),
    retry: { attempts: 4, baseDelayMs: 10 },
    ...options,
  });
}

/** The source: the token-auth registry, through its proxy. */
function sourceOf(options: Partial<RegistryClientOptions> = {}):
  BlobSource {
  return { registry: clientOf(sourceProxy, source.credentials, options),
    repository: 'org/app' };
}

/** The digest of what a registry serves for a blob, read independently. */
async function servedDigest(registry: TestRegistry, repository: string,
  digest: string): Promise<string> {
  const response = await registryFetch(registry,
    `/v2/${repository}/blobs/${digest}`, { actions: 'pull' });
  expect(response.status).toBe(200);
  return sha256Digest(new Uint8Array(await response.arrayBuffer()));
}

/** The upload session id in an upload URI. */
function uploadId(request: RegistryRequest): string | undefined {
  return /\/blobs\/uploads\/([^/?]+)/.exec(request.path)?.[1];
}

/** Upload requests, leaving out the 401s of the auth challenge. */
const uploads = (requests: RegistryRequest[]) =>
  requests.filter((r) => r.path.includes('/blobs/uploads/') &&
    r.status !== 401);

/** Blob GETs the source proxy saw, leaving out auth challenges. */
const blobGetsAtSource = () => sourceProxy.requests().filter((r) =>
  r.method === 'GET' && r.url.endsWith(layer.digest) && r.status !== 401);

describe('RegistryClient.pushBlob', () => {
  it('streams a blob from the source with one POST and one PUT carrying ' +
    'Content-Length and the digest', async () => {
    // Prepare
    const client = clientOf(targetProxy, target.credentials);
    const repository = freshRepository();
    let counted = 0;

    // Act
    const outcome = await client.pushBlob(repository, layer, sourceOf(),
      { onBytes: (bytes) => { counted += bytes; } });

    // Assess
    expect(outcome).toEqual({ action: 'uploaded', bytes: layer.size });
    expect(counted).toBe(layer.size);
    const sent = uploads(await target.requests());
    expect(sent.map((r) => [r.method, r.status])).toEqual([
      ['POST', 202], ['PUT', 201]]);
    expect(sent[1]!.query.get('digest')).toBe(layer.digest);
    const put = targetProxy.requests().find((r) => r.method === 'PUT')!;
    expect(put.headers['content-length']).toBe(String(layer.size));
    expect(put.headers['transfer-encoding']).toBeUndefined();
    expect(await servedDigest(target, repository, layer.digest))
      .toBe(layer.digest);
  });

  it('copies an empty blob', async () => {
    // Prepare
    const empty = new Uint8Array(0);
    const blob = { mediaType: 'application/octet-stream',
      digest: sha256Digest(empty), size: 0 };
    await pushRaw(source, 'org/empty', [{ digest: blob.digest,
      bytes: empty }], []);
    const client = clientOf(target, target.credentials);
    const repository = freshRepository();

    // Act
    const outcome = await client.pushBlob(repository, blob, {
      registry: clientOf(source, source.credentials),
      repository: 'org/empty' });

    // Assess
    expect(outcome).toEqual({ action: 'uploaded', bytes: 0 });
    expect(await client.headBlob(repository, blob.digest))
      .toEqual({ digest: blob.digest, size: 0 });
  });

  it('mounts from a repository that holds the blob (201), sending no ' +
    'bytes', async () => {
    // Prepare
    const client = clientOf(target, target.credentials);
    const holder = freshRepository();
    await client.pushBlob(holder, layer, sourceOf());
    await target.resetRequests();
    sourceProxy.resetRequests();
    const repository = freshRepository();

    // Act
    const outcome = await client.pushBlob(repository, layer, sourceOf(),
      { mountFrom: [holder] });

    // Assess
    expect(outcome).toEqual({ action: 'mounted', from: holder });
    const sent = await target.requests();
    expect(sent.map((r) => [r.method, r.status])).toEqual([['POST', 201]]);
    expect(sent[0]!.query.get('mount')).toBe(layer.digest);
    expect(sent[0]!.query.get('from')).toBe(holder);
    expect(sourceProxy.requests()).toEqual([]);
  });

  it('uploads into the session a 202 mount answer opened, opening no other',
    async () => {
      // Prepare
      const client = clientOf(target, target.credentials);
      const repository = freshRepository();
      const refused: string[] = [];

      // Act
      const outcome = await client.pushBlob(repository, layer, sourceOf(), {
        mountFrom: ['backup/never-held-it'],
        onMountRefused: (from) => refused.push(from),
      });

      // Assess
      expect(outcome.action).toBe('uploaded');
      expect(refused).toEqual(['backup/never-held-it']);
      const sent = uploads(await target.requests());
      expect(sent.map((r) => [r.method, r.status])).toEqual([
        ['POST', 202], ['PUT', 201]]);
      expect(sent[0]!.query.get('mount')).toBe(layer.digest);
    });

  it('closes the sessions of 202 mounts it does not use', async () => {
    // Prepare
    const client = clientOf(target, target.credentials);
    const repository = freshRepository();

    // Act
    await client.pushBlob(repository, layer, sourceOf(),
      { mountFrom: ['backup/none-1', 'backup/none-2'] });

    // Assess
    const sent = uploads(await target.requests());
    expect(sent.map((r) => [r.method, r.status])).toEqual([
      ['POST', 202], ['DELETE', 204], ['POST', 202], ['PUT', 201]]);
    expect(uploadId(sent[1]!)).not.toBe(uploadId(sent[3]!));
  });

  it('redirects a blob download to the storage host without sending it ' +
    'Authorization', async () => {
    // Prepare
    sourceProxy.redirectBlobs(true);
    const client = clientOf(target, target.credentials);
    const repository = freshRepository();

    // Act
    await client.pushBlob(repository, layer, sourceOf());

    // Assess
    const atRegistry = blobGetsAtSource();
    expect(atRegistry.map((r) => [r.outcome, r.authorization])).toEqual([
      ['redirect', true]]);
    const atStorage = sourceProxy.storageRequests();
    expect(atStorage).toHaveLength(1);
    expect(atStorage[0]!.authorization).toBe(false);
    expect(await servedDigest(target, repository, layer.digest))
      .toBe(layer.digest);
  });

  it('resumes a cut download with a Range request and uploads once',
    async () => {
      // Prepare
      sourceProxy.cutNextBlob(100_000, { digest: layer.digest });
      const client = clientOf(target, target.credentials);
      const repository = freshRepository();

      // Act
      await client.pushBlob(repository, layer, sourceOf());

      // Assess
      const gets = blobGetsAtSource();
      expect(gets.map((r) => [r.outcome, r.headers.range])).toEqual([
        ['cut', undefined], ['forwarded', 'bytes=100000-']]);
      expect(uploads(await target.requests()).map((r) => r.method))
        .toEqual(['POST', 'PUT']);
      expect(await servedDigest(target, repository, layer.digest))
        .toBe(layer.digest);
    });

  it('resumes a cut download from the storage host it was redirected to',
    async () => {
      // Prepare
      sourceProxy.redirectBlobs(true);
      sourceProxy.cutNextBlob(50_000, { digest: layer.digest });
      const client = clientOf(target, target.credentials);
      const repository = freshRepository();

      // Act
      await client.pushBlob(repository, layer, sourceOf());

      // Assess
      const atStorage = sourceProxy.storageRequests();
      expect(atStorage.map((r) => [r.outcome, r.headers.range,
        r.authorization])).toEqual([['cut', undefined, false],
        ['storage', 'bytes=50000-', false]]);
      expect(blobGetsAtSource().map((r) => [r.outcome, r.headers.range,
        r.authorization])).toEqual([['redirect', undefined, true],
        ['redirect', 'bytes=50000-', true]]);
      expect(await servedDigest(target, repository, layer.digest))
        .toBe(layer.digest);
    });

  it('starts a cut download over where the source ignores Range, still ' +
    'uploading once', async () => {
    // Prepare
    sourceProxy.cutNextBlob(100_000, { digest: layer.digest });
    sourceProxy.intercept((req) => {
      delete req.headers.range;
      return false;
    });
    const client = clientOf(target, target.credentials);
    const repository = freshRepository();

    // Act
    await client.pushBlob(repository, layer, sourceOf());

    // Assess
    const gets = blobGetsAtSource();
    expect(gets.map((r) => [r.headers.range, r.status])).toEqual([
      [undefined, 200], ['bytes=100000-', 200]]);
    expect(uploads(await target.requests()).map((r) => r.method))
      .toEqual(['POST', 'PUT']);
    expect(await servedDigest(target, repository, layer.digest))
      .toBe(layer.digest);
  });

  it('abandons the upload on a digest mismatch, leaving no session open',
    async () => {
      // Prepare: the source serves other bytes of the same size
      sourceProxy.intercept((req, res) => {
        if (req.method !== 'GET' || !req.url?.endsWith(layer.digest)) {
          return false;
        }
        res.writeHead(200, { 'content-length': String(layer.size) });
        res.end(Buffer.alloc(layer.size, 1));
        return true;
      });
      const client = clientOf(target, target.credentials);
      const repository = freshRepository();

      // Act
      const error = await client.pushBlob(repository, layer, sourceOf())
        .catch((e: unknown) => e);

      // Assess
      expect(error).toBeInstanceOf(IntegrityError);
      expect((error as Error).message).toContain(layer.digest);
      expect(await client.headBlob(repository, layer.digest))
        .toBeUndefined();
      const sent = uploads(await target.requests());
      // the log is in completion order; the broken PUT may end last
      const byMethod = Object.fromEntries(sent.map((r) => [r.method, r]));
      expect(Object.keys(byMethod).sort()).toEqual(['DELETE', 'POST', 'PUT']);
      expect(sent).toHaveLength(3);
      const session = uploadId(byMethod.PUT!);
      expect(uploadId(byMethod.DELETE!)).toBe(session);
      const status = await registryFetch(target,
        `/v2/${repository}/blobs/uploads/${session}`, { actions: 'pull' });
      expect(status.status).toBe(404);
    });

  it('retries 503 and 429 as Retry-After asks, in seconds or as a date',
    async () => {
      // Prepare: backoff so long that only Retry-After lets it finish
      const client = clientOf(targetProxy, target.credentials,
        { retry: { attempts: 4, baseDelayMs: 600_000 } });
      const startUpload = requestsTo('POST', /\/blobs\/uploads\/$/);
      targetProxy.failNext(1, { match: startUpload, status: 503,
        retryAfter: '0' });
      targetProxy.failNext(1, { match: startUpload, status: 429,
        retryAfter: new Date(Date.now() + 1000).toUTCString() });
      const repository = freshRepository();

      // Act
      const outcome = await client.pushBlob(repository, layer, sourceOf());

      // Assess
      expect(outcome.action).toBe('uploaded');
      expect(targetProxy.requests().filter((r) => r.method === 'POST' &&
        r.status !== 401).map((r) => [r.outcome, r.status])).toEqual([
        ['fault', 503], ['fault', 429], ['forwarded', 202]]);
    });

  it('gives up at once when Retry-After asks for longer than it waits',
    async () => {
      // Prepare
      const client = clientOf(targetProxy, target.credentials);
      targetProxy.failNext(1, { status: 503, retryAfter: '3600' });

      // Act
      const error = await client.headBlob(freshRepository(), layer.digest)
        .catch((e: unknown) => e);

      // Assess
      expect(error).toBeInstanceOf(TransientError);
      expect((error as TransientError).status).toBe(503);
      expect((error as Error).message).toContain('after 1 attempt');
      expect(targetProxy.requests()).toHaveLength(1);
    });

  it('gives up after its attempts with a TransientError naming the ' +
    'status', async () => {
    // Prepare
    const client = clientOf(targetProxy, target.credentials,
      { retry: { attempts: 3, baseDelayMs: 1 } });
    targetProxy.failNext(10, { status: 502 });
    const repository = freshRepository();

    // Act
    const error = await client.headBlob(repository, layer.digest)
      .catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(TransientError);
    expect((error as Error).message).toContain(
      `HEAD blob ${targetProxy.host}/${repository}@${layer.digest}`);
    expect((error as Error).message).toMatch(/HTTP 502.*after 3 attempt/);
    expect(targetProxy.requests()).toHaveLength(3);
  });

  it('starts the upload over in a new session when the PUT fails with a ' +
    '5xx', async () => {
    // Prepare
    const client = clientOf(targetProxy, target.credentials);
    targetProxy.failNext(1, { match: requestsTo('PUT', /\/blobs\/uploads\//),
      status: 500 });
    const repository = freshRepository();

    // Act
    const outcome = await client.pushBlob(repository, layer, sourceOf());

    // Assess
    expect(outcome.action).toBe('uploaded');
    const sent = uploads(await target.requests());
    expect(sent.map((r) => [r.method, r.status])).toEqual([
      ['POST', 202], ['DELETE', 204], ['POST', 202], ['PUT', 201]]);
    expect(await servedDigest(target, repository, layer.digest))
      .toBe(layer.digest);
  });
});

describe('RegistryClient.pushBlob when aborted', () => {
  it('stops with an InterruptedError and closes its session', async () => {
    // Prepare
    const client = clientOf(target, target.credentials);
    const repository = freshRepository();
    const controller = new AbortController();

    // Act
    const error = await client.pushBlob(repository, layer, sourceOf(), {
      signal: controller.signal,
      onBytes: () => controller.abort(),
    }).catch((e: unknown) => e);

    // Assess
    expect((error as Error).name).toBe('InterruptedError');
    expect(await client.headBlob(repository, layer.digest)).toBeUndefined();
    const methods = uploads(await target.requests()).map((r) => r.method);
    expect(methods).toContain('DELETE');
    expect(methods.filter((m) => m === 'POST')).toHaveLength(1);
  });

  it('settles when aborted just as the last byte is handed on, whichever ' +
    'way the race goes', async () => {
    // Prepare: the abort comes after the digest matched and the body was
    // all handed to the upload, while the download may not have ended
    const client = clientOf(target, target.credentials);
    const repository = freshRepository();
    const controller = new AbortController();
    let handed = 0;

    // Act
    const settled = await client.pushBlob(repository, layer, sourceOf(), {
      signal: controller.signal,
      onBytes: (bytes) => {
        handed += bytes;
        if (handed === layer.size) controller.abort();
      },
    }).then((outcome) => outcome.action, (e: unknown) => (e as Error).name);

    // Assess
    expect(['uploaded', 'InterruptedError']).toContain(settled);
  });
});

describe('RegistryClient.pushBlob in chunks', () => {
  it('sends PATCH chunks of at least the minimum size, in order, then a ' +
    'PUT with the digest', async () => {
    // Prepare
    const client = clientOf(targetProxy, target.credentials, {
      chunkedUploadAbove: 0, chunkSize: 64 * 1024, minChunkSize: 100_000 });
    const repository = freshRepository();

    // Act
    const outcome = await client.pushBlob(repository, layer, sourceOf());

    // Assess
    expect(outcome.action).toBe('uploaded');
    const patches = targetProxy.requests().filter((r) =>
      r.method === 'PATCH');
    const expected = [];
    for (let start = 0; start < layer.size; start += 100_000) {
      expected.push(`${start}-${Math.min(start + 100_000, layer.size) - 1}`);
    }
    expect(patches.map((r) => r.headers['content-range'])).toEqual(expected);
    const sent = uploads(await target.requests());
    expect(sent.at(-1)).toMatchObject({ method: 'PUT', status: 201 });
    expect(sent.at(-1)!.query.get('digest')).toBe(layer.digest);
    expect(await servedDigest(target, repository, layer.digest))
      .toBe(layer.digest);
  });

  it('resumes a download cut while uploading in chunks, sending each ' +
    'byte once', async () => {
    // Prepare: the download runs ahead of a chunk and waits for the next
    // one, so the cut may come while it is paused
    sourceProxy.cutNextBlob(150_000, { digest: layer.digest });
    const client = clientOf(targetProxy, target.credentials, {
      chunkedUploadAbove: 0, chunkSize: 64 * 1024 });
    const repository = freshRepository();

    // Act
    await client.pushBlob(repository, layer, sourceOf());

    // Assess
    const gets = blobGetsAtSource();
    expect(gets.map((r) => r.outcome)).toEqual(['cut', 'forwarded']);
    expect(gets[1]!.headers.range).toMatch(/^bytes=\d+-$/);
    const patches = targetProxy.requests().filter((r) =>
      r.method === 'PATCH');
    const expected = [];
    for (let start = 0; start < layer.size; start += 64 * 1024) {
      expected.push(`${start}-${Math.min(start + 64 * 1024, layer.size) - 1}`);
    }
    expect(patches.map((r) => r.headers['content-range'])).toEqual(expected);
    expect(await servedDigest(target, repository, layer.digest))
      .toBe(layer.digest);
  });

  it('honours OCI-Chunk-Min-Length and a relative Location', async () => {
    // Prepare: the proxy opens the session itself and answers with a
    // relative Location and a minimum chunk larger than ours
    const client = clientOf(targetProxy, target.credentials,
      { chunkedUploadAbove: 0, chunkSize: 64 * 1024 });
    targetProxy.intercept((req, res) => {
      if (req.method !== 'POST' || !req.url?.endsWith('/blobs/uploads/')) {
        return false;
      }
      void registryFetch(target, req.url, { method: 'POST' })
        .then((answer) => {
          const location = new URL(answer.headers.get('location')!);
          res.writeHead(202, { 'oci-chunk-min-length': '150000',
            location: `${location.pathname}${location.search}`,
            'content-length': '0' });
          res.end();
        });
      return true;
    });
    const repository = freshRepository();

    // Act
    await client.pushBlob(repository, layer, sourceOf());

    // Assess: the first PATCH met the auth challenge the POST did not
    const patches = targetProxy.requests().filter((r) =>
      r.method === 'PATCH' && r.status !== 401);
    expect(patches.map((r) => r.headers['content-range'])).toEqual([
      '0-149999', '150000-299999', `300000-${layer.size - 1}`]);
    expect(await servedDigest(target, repository, layer.digest))
      .toBe(layer.digest);
  });

  it('switches to chunks when the registry refuses a monolithic PUT',
    async () => {
      // Prepare
      const warnings: string[] = [];
      const logger: Logger = { debug: () => {},
        warn: (message) => warnings.push(message) };
      const client = clientOf(targetProxy, target.credentials,
        { logger, chunkSize: 128 * 1024 });
      targetProxy.intercept((req, res) => {
        const length = Number(req.headers['content-length'] ?? 0);
        if (req.method !== 'PUT' || length === 0) return false;
        res.writeHead(405, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'UNSUPPORTED',
          message: 'monolithic uploads are not supported' }] }));
        return true;
      });
      const repository = freshRepository();

      // Act
      const outcome = await client.pushBlob(repository, layer, sourceOf());

      // Assess
      expect(outcome.action).toBe('uploaded');
      expect(warnings).toEqual([expect.stringContaining('monolithic')]);
      const methods = uploads(await target.requests()).map((r) => r.method);
      expect(methods).toEqual(['POST', 'DELETE', 'POST', 'PATCH', 'PATCH',
        'PATCH', 'PUT']);
      expect(await servedDigest(target, repository, layer.digest))
        .toBe(layer.digest);
    });
});

describe('RegistryClient.pushBlob when a registry loses chunks', () => {
  it('uploads in one PUT once a PATCH was not kept (Range did not ' +
    'advance)', async () => {
    // Prepare: the second PATCH is swallowed, as ECR has been seen to do
    const warnings: string[] = [];
    const client = clientOf(targetProxy, target.credentials, {
      chunkedUploadAbove: 0, chunkSize: 100_000,
      logger: { debug: () => {}, warn: (message) => warnings.push(message) },
    });
    let patches = 0;
    targetProxy.intercept((req, res) => {
      if (req.method !== 'PATCH' || ++patches !== 2) return false;
      req.resume();
      req.on('end', () => {
        res.writeHead(201, { range: '0-99999', location: req.url! });
        res.end();
      });
      return true;
    });
    const repository = freshRepository();

    // Act
    const outcome = await client.pushBlob(repository, layer, sourceOf());

    // Assess
    expect(outcome.action).toBe('uploaded');
    expect(warnings).toEqual([expect.stringContaining('lost a chunk')]);
    const sent = uploads(await target.requests());
    expect(sent.slice(-2).map((r) => [r.method, r.status])).toEqual([
      ['POST', 202], ['PUT', 201]]);
    expect(await servedDigest(target, repository, layer.digest))
      .toBe(layer.digest);
  });
});

describe('RegistryClient.pushBlob with token auth on the target', () => {
  let guarded: TestRegistry;

  beforeAll(async () => {
    guarded = await startRegistry({ auth: 'token', name: 'guarded' });
  });

  it('asks for pull on the repository it mounts from', async () => {
    // Prepare
    const client = clientOf(guarded, guarded.credentials);
    const holder = freshRepository();
    await client.pushBlob(holder, layer, sourceOf());
    guarded.tokenIssuer!.resetRequests();
    const repository = freshRepository();

    // Act
    const outcome = await client.pushBlob(repository, layer, sourceOf(),
      { mountFrom: [holder] });

    // Assess
    expect(outcome).toEqual({ action: 'mounted', from: holder });
    expect(guarded.tokenIssuer!.requests().map((r) => r.scopes.sort()))
      .toEqual([[`repository:${holder}:pull`,
        `repository:${repository}:pull,push`]]);
  });

  it('falls back to a plain upload when the token may not pull from the ' +
    'mount\'s repository (insufficient_scope)', async () => {
    // Prepare
    const client = clientOf(guarded, guarded.credentials);
    const holder = freshRepository();
    await client.pushBlob(holder, layer, sourceOf());
    guarded.tokenIssuer!.setGrantPolicy((r) =>
      r.name === holder ? [] : r.actions);
    await guarded.resetRequests();
    const repository = freshRepository();
    const refused: string[] = [];

    // Act
    const outcome = await client.pushBlob(repository, layer, sourceOf(), {
      mountFrom: [holder], onMountRefused: (from) => refused.push(from) });

    // Assess
    expect(outcome.action).toBe('uploaded');
    expect(refused).toEqual([holder]);
    const sent = uploads(await guarded.requests());
    const mounts = sent.filter((r) => r.query.has('mount'));
    expect(mounts.every((r) => r.status === 401)).toBe(true);
    expect(sent.filter((r) => !r.query.has('mount'))
      .map((r) => [r.method, r.status])).toEqual([['POST', 202],
      ['PUT', 201]]);
    guarded.tokenIssuer!.setGrantPolicy();
  });
});

describe('RegistryClient.openBlob and headBlob', () => {
  it('opens a blob at an offset (206) and says where it starts', async () => {
    // Prepare
    const client = clientOf(source, source.credentials);

    // Act
    const opened = await client.openBlob('org/app', layer.digest, 1000);
    const rest = Buffer.from(await new Response(opened.body).arrayBuffer());

    // Assess
    expect(opened.offset).toBe(1000);
    expect(opened.size).toBe(layer.size);
    expect(rest.length).toBe(layer.size - 1000);
    const whole = await client.openBlob('org/app', layer.digest, 0);
    const all = Buffer.from(await new Response(whole.body).arrayBuffer());
    expect(createHash('sha256').update(all).digest('hex'))
      .toBe(layer.digest.slice('sha256:'.length));
    expect(all.subarray(1000).equals(rest)).toBe(true);
  });

  it('gives a blob\'s size, or undefined when the repository lacks it',
    async () => {
      // Prepare
      const client = clientOf(source, source.credentials);

      // Act
      const present = await client.headBlob('org/app', layer.digest);
      const absent = await client.headBlob('org/app',
        sha256Digest('not a blob here'));

      // Assess
      expect(present).toEqual({ digest: layer.digest, size: layer.size });
      expect(absent).toBeUndefined();
    });

  it('sizes a blob whose HEAD is redirected without following the ' +
    'redirect', async () => {
    // Prepare: storage URLs may be signed for GET only
    sourceProxy.intercept((req, res) => {
      if (req.method !== 'HEAD' || !req.url?.endsWith(layer.digest)) {
        return false;
      }
      res.writeHead(307, { location: `${sourceProxy.storageUrl}/head`,
        'content-length': '0' });
      res.end();
      return true;
    });
    const client = clientOf(sourceProxy, source.credentials);

    // Act
    const head = await client.headBlob('org/app', layer.digest);

    // Assess
    expect(head).toEqual({ digest: layer.digest, size: layer.size });
    expect(sourceProxy.storageRequests()).toEqual([]);
    expect(blobGetsAtSource().map((r) => [r.headers.range, r.status]))
      .toEqual([['bytes=0-0', 206]]);
  });
});
