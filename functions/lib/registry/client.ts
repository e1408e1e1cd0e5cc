// The registry client: the resource methods of the distribution API
// (manifests, blobs, uploads, mounts, tags, referrers) over the HTTP layer.

import { BackupError, TransientError } from '../errors.js';
import { repositoryScope } from './auth.js';
import { BlobReader } from './blob-reader.js';
import { digestOf, isDigest } from './digest.js';
import {
  DigestMismatchError, RegistryAuthenticationError, RegistryInterruptedError,
  RegistryNotFoundError, RegistryRequestError, type RegistryErrorContext,
} from './errors.js';
import { RegistryHttp, type RegistryRequest } from './http.js';
import {
  DEFAULT_MAX_MANIFEST_SIZE, bareMediaType, manifestMediaType, readLimited,
} from './manifests.js';
import {
  backoffDelay, discard, networkError, sleep, type RetryOptions,
} from './retry.js';
import {
  MANIFEST_MEDIA_TYPES, MediaType, type BlobHead, type BlobPushOptions,
  type BlobPushOutcome, type BlobSource, type BlobStream,
  type CredentialProvider, type Descriptor, type Logger, type Manifest,
  type ManifestHead, type Registry, type RegistryEndpoint,
} from './types.js';

export interface RegistryClientOptions {
  endpoint: RegistryEndpoint;
  /** Where credentials come from. @default anonymous access */
  credentials?: CredentialProvider;
  /** Decisions at debug, fallbacks at warn. @default silent */
  logger?: Logger;
  /** Retries of network errors, 5xx and 429; also bounds upload restarts. */
  retry?: RetryOptions;
  /**
   * Blobs larger than this are uploaded in PATCH chunks rather than one
   * streaming PUT. Monolithic is fastest; a registry that refuses it is
   * switched to chunks on its own. @default Infinity
   */
  chunkedUploadAbove?: number;
  /** Bytes per PATCH of a chunked upload. @default 64 MiB */
  chunkSize?: number;
  /**
   * The smallest chunk, the last excepted, the registry accepts (ECR: 5
   * MiB); a registry's `OCI-Chunk-Min-Length` raises it. @default 0
   */
  minChunkSize?: number;
  /** Manifests larger than this are refused. @default 4 MiB */
  maxManifestSize?: number;
  /** @default 'ghcr-backup' */
  userAgent?: string;
}

const MiB = 1024 * 1024;

/** An upload session: where to send the bytes, and in what chunks. */
interface UploadSession {
  url: URL;
  /** The registry's `OCI-Chunk-Min-Length`, 0 when it named none. */
  minChunk: number;
}

type PushBlobOptions = BlobPushOptions & {
  onMountRefused?: (from: string) => void;
};

/** Statuses by which a registry says it will not take a blob in one PUT. */
const MONOLITHIC_REFUSED = new Set([405, 413, 415, 501]);

const PULL = ['pull'];
const PUSH = ['pull', 'push'];

export class RegistryClient implements Registry {
  readonly endpoint: RegistryEndpoint;
  readonly #http: RegistryHttp;
  readonly #logger?: Logger;
  readonly #chunkedAbove: number;
  readonly #chunkSize: number;
  readonly #minChunkSize: number;
  readonly #maxManifestSize: number;
  /**
   * How this registry takes uploads, once it showed us: chunks after it
   * refused a monolithic PUT, one PUT after it lost a chunk.
   */
  #learned?: 'chunked' | 'monolithic';

  constructor(options: RegistryClientOptions) {
    this.endpoint = options.endpoint;
    this.#logger = options.logger;
    this.#http = new RegistryHttp({
      endpoint: options.endpoint,
      credentials: options.credentials ?? (async () => undefined),
      retry: options.retry,
      logger: options.logger,
      userAgent: options.userAgent,
    });
    this.#chunkedAbove = options.chunkedUploadAbove ??
      Number.POSITIVE_INFINITY;
    this.#chunkSize = options.chunkSize ?? 64 * MiB;
    this.#minChunkSize = options.minChunkSize ?? 0;
    this.#maxManifestSize = options.maxManifestSize ??
      DEFAULT_MAX_MANIFEST_SIZE;
  }

  /** Token requests sent so far (each scope set once while it is valid). */
  get tokenRequests(): number {
    return this.#http.auth.tokenRequests;
  }

  async headManifest(repository: string, reference: string,
    signal?: AbortSignal): Promise<ManifestHead | undefined> {
    const context = this.#context(repository, reference, 'HEAD manifest');
    const response = await this.#http.send({
      method: 'HEAD',
      url: `/v2/${repository}/manifests/${reference}`,
      scopes: [repositoryScope(repository, PULL)],
      headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') },
      allow: [404],
      context, signal,
    });
    if (response.status === 404) return undefined;

    const digest = response.headers.get('docker-content-digest') ??
      (isDigest(reference) ? reference : undefined);
    const mediaType = bareMediaType(response.headers.get('content-type'));
    const length = response.headers.get('content-length');

    // a HEAD that does not say it all is answered by a GET
    if (!digest || !isDigest(digest) || !length ||
      !MANIFEST_MEDIA_TYPES.includes(mediaType)) {
      this.#logger?.debug('manifest HEAD incomplete; using GET', {
        registry: this.endpoint.host, repository, reference,
      });
      const { bytes: _bytes, ...head } = await this.getManifest(repository,
        reference, signal);
      return head;
    }

    if (isDigest(reference) && digest !== reference) {
      throw new DigestMismatchError(context, reference, digest,
        'the announced digest');
    }
    return { digest, mediaType, size: Number(length) };
  }

  async getManifest(repository: string, reference: string,
    signal?: AbortSignal): Promise<Manifest> {
    const context = this.#context(repository, reference, 'GET manifest');
    const response = await this.#http.send({
      method: 'GET',
      url: `/v2/${repository}/manifests/${reference}`,
      scopes: [repositoryScope(repository, PULL)],
      headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') },
      context, signal,
    });
    const bytes = await this.#read(() =>
      readLimited(response, this.#maxManifestSize, context), context);

    // the digest asked for, else the one announced, must be the bytes'
    const announced = response.headers.get('docker-content-digest');
    const expected = isDigest(reference) ? reference
      : announced && isDigest(announced) ? announced : undefined;
    const actual = digestOf(bytes, expected);
    if (expected && actual !== expected) {
      throw new DigestMismatchError(context, expected, actual,
        'the manifest\'s digest');
    }

    const mediaType = manifestMediaType(
      response.headers.get('content-type'), bytes, context);
    return { digest: actual, mediaType, size: bytes.length, bytes };
  }

  async putManifest(repository: string, reference: string,
    manifest: Manifest, signal?: AbortSignal): Promise<void> {
    const context = this.#context(repository, reference, 'PUT manifest');

    // the bytes must be what they claim before a registry stores them
    const actual = digestOf(manifest.bytes, manifest.digest);
    if (actual !== manifest.digest) {
      throw new DigestMismatchError(context, manifest.digest, actual,
        'the manifest\'s digest');
    }
    if (isDigest(reference) && reference !== manifest.digest) {
      throw new DigestMismatchError(context, reference, manifest.digest,
        'the manifest\'s digest');
    }

    const response = await this.#http.send({
      method: 'PUT',
      url: `/v2/${repository}/manifests/${reference}`,
      scopes: [repositoryScope(repository, PUSH)],
      headers: { 'content-type': manifest.mediaType },
      body: () => manifest.bytes,
      context, signal,
    });
    await discard(response);

    const stored = response.headers.get('docker-content-digest');
    if (stored && isDigest(stored) && stored !== manifest.digest &&
      stored.split(':')[0] === manifest.digest.split(':')[0]) {
      throw new DigestMismatchError(context, manifest.digest, stored,
        'the digest the registry stored');
    }
  }

  async headBlob(repository: string, digest: string,
    signal?: AbortSignal): Promise<BlobHead | undefined> {
    const context = this.#context(repository, digest, 'HEAD blob');
    // a redirect says the blob exists; its storage URL may be signed for
    // GET only, so it is not followed
    const response = await this.#http.send({
      method: 'HEAD',
      url: `/v2/${repository}/blobs/${digest}`,
      scopes: [repositoryScope(repository, PULL)],
      allow: [404],
      redirects: false,
      context, signal,
    });
    if (response.status === 404) return undefined;

    const length = response.headers.get('content-length');
    if (response.status === 200 && length !== null) {
      return { digest, size: Number(length) };
    }

    // no size said: a one-byte range tells it (Content-Range: 0-0/SIZE)
    const opened = await this.#openBlob(repository, digest, 'bytes=0-0',
      context, signal);
    await opened.body.cancel().catch(() => undefined);
    return { digest, size: opened.size ?? 0 };
  }

  async openBlob(repository: string, digest: string, offset: number,
    signal?: AbortSignal): Promise<BlobStream> {
    const context = this.#context(repository, digest, 'GET blob');
    return this.#openBlob(repository, digest,
      offset > 0 ? `bytes=${offset}-` : undefined, context, signal);
  }

  async pushBlob(repository: string, blob: Descriptor, source: BlobSource,
    options: PushBlobOptions = {}): Promise<BlobPushOutcome> {
    const context = this.#context(repository, blob.digest, 'push blob');

    // mount first: the digest may already be in another repository here
    const mount = await this.#mount(repository, blob, options, context);
    if (mount.from) return { action: 'mounted', from: mount.from };

    let session = mount.session;
    let chunked = this.#learned ? this.#learned === 'chunked'
      : blob.size > this.#chunkedAbove;
    const attempts = this.#http.retry.attempts;
    let challenged = false;

    for (let attempt = 1; ; attempt++) {
      const reader = new BlobReader(source, blob, {
        retry: this.#http.retry,
        signal: options.signal,
        onBytes: options.onBytes,
        logger: this.#logger,
      });

      try {
        session ??= await this.#startUpload(repository, context,
          options.signal);
        if (chunked && blob.size > 0) {
          await this.#putChunks(repository, blob, session, reader, context,
            options.signal);
        } else {
          await this.#putWhole(repository, blob, session, reader, context,
            options.signal);
        }
        return { action: 'uploaded', bytes: blob.size };
      } catch (caught) {
        // the source's failure explains the upload's, which it caused
        const error = reader.failure ?? caught;
        await reader.close();
        if (session) await this.#cancelUpload(repository, session, context);
        session = undefined;

        const failure = error instanceof BackupError ? error
          : networkError(context, error, 1);
        // the other way may work where this one does not (once)
        if (!chunked && !this.#learned && isMonolithicRefusal(failure)) {
          this.#logger?.warn('registry refused a monolithic upload; ' +
            'using chunks', { registry: this.endpoint.host,
            status: failure.status });
          this.#learned = 'chunked';
          chunked = true;
          continue;
        }
        if (chunked && !this.#learned && isChunkLost(failure)) {
          this.#logger?.warn('registry lost a chunk of an upload; using ' +
            'one PUT', { registry: this.endpoint.host });
          this.#learned = 'monolithic';
          chunked = false;
          continue;
        }

        // a streamed body is sent once, so its 401 challenge is answered
        // by starting over (the registry asked for auth only now)
        if (failure instanceof RegistryAuthenticationError &&
          failure.status === 401 && !failure.insufficientScope &&
          !challenged) {
          challenged = true;
          continue;
        }

        // the reader spent its own retries on the source already
        const retry = failure instanceof TransientError &&
          !reader.failure && attempt < attempts;
        if (!retry) throw failure;

        const wait = backoffDelay(this.#http.retry, attempt);
        this.#logger?.debug('blob upload failed; starting over', {
          registry: this.endpoint.host, repository, digest: blob.digest,
          attempt, delayMs: wait, error: failure.message,
        });
        await sleep(wait, options.signal).catch((abort: unknown) => {
          throw new RegistryInterruptedError(context, abort);
        });
      }
    }
  }

  async referrers(repository: string, digest: string,
    signal?: AbortSignal): Promise<Descriptor[] | undefined> {
    const context = this.#context(repository, digest, 'GET referrers of');
    const found: Descriptor[] = [];
    let url: string | URL | undefined = `/v2/${repository}/referrers/${digest}`;

    for (let page = 0; url; page++) {
      const response = await this.#http.send({
        method: 'GET', url,
        scopes: [repositoryScope(repository, PULL)],
        headers: { accept: MediaType.ociIndex },
        allow: [400, 404, 405, 406, 501],
        context, signal,
      });

      // no referrers API: a 404 for the route, or not an index
      const type = bareMediaType(response.headers.get('content-type'));
      if (!response.ok || type !== MediaType.ociIndex) {
        await discard(response);
        return page === 0 ? undefined : found;
      }

      const bytes = await this.#read(() =>
        readLimited(response, this.#maxManifestSize, context), context);
      const index = parseJson(bytes, context) as { manifests?: unknown };
      if (!Array.isArray(index.manifests)) {
        return page === 0 ? undefined : found;
      }
      found.push(...(index.manifests as Descriptor[]));

      url = nextLink(response, url, this.#http);
    }
    return found;
  }

  async listTags(repository: string, signal?: AbortSignal):
    Promise<string[]> {
    const context = this.#context(repository, undefined, 'list tags of');
    const tags: string[] = [];
    let url: string | URL | undefined = `/v2/${repository}/tags/list`;

    while (url) {
      const response = await this.#http.send({
        method: 'GET', url,
        scopes: [repositoryScope(repository, PULL)],
        allow: [404],
        context, signal,
      });
      if (response.status === 404) {
        await discard(response);
        return tags;
      }

      const bytes = await this.#read(() =>
        readLimited(response, 64 * MiB, context), context);
      const page = parseJson(bytes, context) as { tags?: unknown };
      if (Array.isArray(page.tags)) {
        tags.push(...page.tags.filter((t): t is string =>
          typeof t === 'string'));
      }
      url = nextLink(response, url, this.#http);
    }
    return tags;
  }

  #context(repository: string, reference: string | undefined,
    operation: string): RegistryErrorContext {
    return { registry: this.endpoint.host, repository, reference, operation };
  }

  /** Reads a body, turning a broken connection into our errors. */
  async #read<T>(read: () => Promise<T>, context: RegistryErrorContext):
    Promise<T> {
    try {
      return await read();
    } catch (error) {
      if (error instanceof BackupError) throw error;
      throw networkError(context, error, 1);
    }
  }

  async #openBlob(repository: string, digest: string,
    range: string | undefined, context: RegistryErrorContext,
    signal?: AbortSignal): Promise<BlobStream> {
    const response = await this.#http.send({
      method: 'GET',
      url: `/v2/${repository}/blobs/${digest}`,
      scopes: [repositoryScope(repository, PULL)],
      headers: range ? { range } : {},
      streamed: true,
      context, signal,
    });
    const body = response.body ?? new ReadableStream<Uint8Array>({
      start: (controller) => controller.close(),
    });

    // 206: where the answer starts and the whole size, from Content-Range
    if (response.status === 206) {
      const match = /^bytes (\d+)-\d+\/(\d+|\*)$/i.exec(
        response.headers.get('content-range') ?? '');
      if (!match) {
        await body.cancel().catch(() => undefined);
        throw new RegistryRequestError(context,
          'answered 206 without a usable Content-Range', { status: 206 });
      }
      return {
        body,
        offset: Number(match[1]),
        size: match[2] === '*' ? undefined : Number(match[2]),
      };
    }

    const length = response.headers.get('content-length');
    return { body, offset: 0,
      size: length === null ? undefined : Number(length) };
  }

  /**
   * Tries each mount candidate: 201 is done; 202 opened an upload session
   * instead, which the upload then uses (the last one; earlier ones are
   * closed); a refusal (`insufficient_scope`, a denied or unknown
   * repository) moves on. Each miss is reported so the caller can forget
   * that location.
   */
  async #mount(repository: string, blob: Descriptor,
    options: PushBlobOptions, context: RegistryErrorContext):
    Promise<{ from?: string; session?: UploadSession }> {
    const candidates = (options.mountFrom ?? [])
      .filter((from) => from !== repository);
    let session: UploadSession | undefined;

    for (const from of candidates) {
      if (session) {
        await this.#cancelUpload(repository, session, context);
        session = undefined;
      }

      const mountContext = { ...context, operation: `mount from ${from}` };
      const query = new URLSearchParams({ mount: blob.digest, from });
      let response: Response;
      try {
        response = await this.#http.send({
          method: 'POST',
          url: `/v2/${repository}/blobs/uploads/?${query}`,
          scopes: [repositoryScope(repository, PUSH),
            repositoryScope(from, PULL)],
          headers: { 'content-length': '0' },
          allow: [201, 202],
          context: mountContext,
          signal: options.signal,
        });
      } catch (error) {
        if (!(error instanceof RegistryAuthenticationError ||
          error instanceof RegistryNotFoundError ||
          error instanceof RegistryRequestError)) {
          throw error;
        }
        this.#logger?.warn('mount refused; trying the next way', {
          registry: this.endpoint.host, repository, from,
          digest: blob.digest, error: error.message,
        });
        options.onMountRefused?.(from);
        continue;
      }

      if (response.status === 201) {
        await discard(response);
        return { from };
      }

      this.#logger?.debug('blob not mounted; uploading into the session ' +
        'the mount opened', { registry: this.endpoint.host, repository,
        from, digest: blob.digest });
      options.onMountRefused?.(from);
      session = await this.#session(response, mountContext);
    }
    return { session };
  }

  async #startUpload(repository: string, context: RegistryErrorContext,
    signal?: AbortSignal): Promise<UploadSession> {
    const response = await this.#http.send({
      method: 'POST',
      url: `/v2/${repository}/blobs/uploads/`,
      scopes: [repositoryScope(repository, PUSH)],
      headers: { 'content-length': '0' },
      allow: [202],
      context: { ...context, operation: 'start upload of' },
      signal,
    });
    return this.#session(response, context);
  }

  async #session(response: Response, context: RegistryErrorContext):
    Promise<UploadSession> {
    await discard(response);
    const location = response.headers.get('location');
    if (response.status !== 202 || !location) {
      throw new RegistryRequestError(context,
        `answered ${response.status} without an upload Location`,
        { status: response.status });
    }
    return {
      url: this.#http.resolve(location, response.url),
      minChunk: Number(response.headers.get('oci-chunk-min-length')) || 0,
    };
  }

  /** Closes an upload session that will not be finished. */
  async #cancelUpload(repository: string, session: UploadSession,
    context: RegistryErrorContext): Promise<void> {
    try {
      const response = await this.#http.send({
        method: 'DELETE', url: session.url, once: true,
        scopes: [repositoryScope(repository, PUSH)],
        allow: [404, 405],
        context: { ...context, operation: 'cancel upload of' },
      });
      await discard(response);
    } catch (error) {
      // the registry expires abandoned sessions itself
      this.#logger?.debug('could not cancel an upload session', {
        registry: this.endpoint.host, repository,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  /** The whole blob in one streaming PUT, digest in the query. */
  async #putWhole(repository: string, blob: Descriptor,
    session: UploadSession, reader: BlobReader,
    context: RegistryErrorContext, signal?: AbortSignal): Promise<void> {
    // an empty blob reads nothing, but its digest must still be checked
    if (blob.size === 0) reader.verifyEmpty();

    const response = await this.#http.send({
      method: 'PUT', url: withDigest(session.url, blob.digest), once: true,
      scopes: [repositoryScope(repository, PUSH)],
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(blob.size),
      },
      body: () => reader.readable(),
      context, signal,
    });
    await this.#finished(response, blob, context);
  }

  /** PATCH chunks of the blob in order, then a PUT with the digest. */
  async #putChunks(repository: string, blob: Descriptor,
    session: UploadSession, reader: BlobReader,
    context: RegistryErrorContext, signal?: AbortSignal): Promise<void> {
    const chunk = Math.max(this.#chunkSize, this.#minChunkSize,
      session.minChunk);
    const scopes = [repositoryScope(repository, PUSH)];
    let url = session.url;

    while (reader.offset < blob.size) {
      const start = reader.offset;
      const length = Math.min(chunk, blob.size - start);
      const request: RegistryRequest = {
        method: 'PATCH', url, once: true, scopes,
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': String(length),
          'content-range': `${start}-${start + length - 1}`,
        },
        body: () => reader.readable(length),
        allow: [202],
        context, signal,
      };
      const response = await this.#http.send(request);
      await discard(response);

      // the registry says what it holds; it must be all we sent
      const range = /^(?:bytes=)?0-(\d+)$/.exec(
        response.headers.get('range') ?? '');
      if (range && Number(range[1]) !== start + length - 1) {
        throw new RegistryRequestError(context,
          `holds bytes 0-${range[1]} after a chunk ending at ` +
          `${start + length - 1}`, { status: response.status,
          code: CHUNK_LOST,
          hint: 'the registry mishandles chunked uploads; leave ' +
            'chunkedUploadAbove unset to upload in one PUT' });
      }
      const location = response.headers.get('location');
      if (location) url = this.#http.resolve(location, url);
    }

    const response = await this.#http.send({
      method: 'PUT', url: withDigest(url, blob.digest), once: true, scopes,
      headers: { 'content-length': '0' },
      context, signal,
    });
    await this.#finished(response, blob, context);
  }

  async #finished(response: Response, blob: Descriptor,
    context: RegistryErrorContext): Promise<void> {
    await discard(response);
    const stored = response.headers.get('docker-content-digest');
    if (stored && isDigest(stored) && stored !== blob.digest &&
      stored.split(':')[0] === blob.digest.split(':')[0]) {
      throw new DigestMismatchError(context, blob.digest, stored,
        'the digest the registry stored');
    }
  }
}

/** Our code for a PATCH whose bytes the registry did not keep. */
const CHUNK_LOST = 'CHUNK_LOST';

function isChunkLost(error: BackupError): boolean {
  return error instanceof RegistryRequestError && error.code === CHUNK_LOST;
}

function isMonolithicRefusal(error: BackupError): boolean {
  return error instanceof RegistryRequestError &&
    (MONOLITHIC_REFUSED.has(error.status ?? 0) || error.code === 'UNSUPPORTED');
}

function withDigest(url: URL, digest: string): URL {
  const next = new URL(url);
  next.searchParams.set('digest', digest);
  return next;
}

/** The `rel="next"` of a Link header, resolved against the request. */
function nextLink(response: Response, current: string | URL,
  http: RegistryHttp): URL | undefined {
  const header = response.headers.get('link');
  if (!header) return undefined;

  for (const part of header.split(',')) {
    const match = /<([^>]*)>\s*;(.*)$/.exec(part.trim());
    if (match && /rel="?next"?/i.test(match[2]!)) {
      return http.resolve(match[1]!,
        typeof current === 'string' ? http.resolve(current) : current);
    }
  }
  return undefined;
}

function parseJson(bytes: Uint8Array, context: RegistryErrorContext):
  Record<string, unknown> {
  try {
    const value = JSON.parse(Buffer.from(bytes).toString('utf8')) as unknown;
    if (value && typeof value === 'object') {
      return value as Record<string, unknown>;
    }
  } catch {
    // reported below
  }
  throw new RegistryRequestError(context, 'answered with malformed JSON');
}
