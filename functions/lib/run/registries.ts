// One registry client per host for a whole process, with the credentials
// each host needs: ECR hosts get tokens from the AWS role and repositories
// created before their first push; every other host the provider given.
//
// Images copied at once often share layers, and the digest store learns
// where a blob is only after a manifest that references it was pushed.
// So within a process, pushes of one blob are also shared: a push of a
// blob another repository is receiving (or received) waits for that, then
// mounts from there. A registry that mounts only what a manifest
// references (ECR) refuses such a mount, and the blob is uploaded as
// before.

import type { EcrRepositories } from '../aws/ecr.js';
import {
  RegistryClient, type RegistryClientOptions,
} from '../registry/client.js';
import type { RetryOptions } from '../registry/retry.js';
import type {
  BlobPushOptions, BlobPushOutcome, BlobSource, BlobStream,
  CredentialProvider, Descriptor, Logger, Manifest, ManifestHead,
  Registry, RegistryEndpoint, BlobHead,
} from '../registry/types.js';

export interface RegistriesOptions {
  /** Credentials of every host that is not ECR. */
  credentials: CredentialProvider;
  logger?: Logger;
  retry?: RetryOptions;
}

/**
 * Hosts that may be ECR. The AWS SDK behind ../aws/ecr.ts takes a sizable
 * part of the CLI's start-up, so it is loaded only when such a host comes
 * up; its parseEcrHost has the exact rule.
 */
const MAYBE_ECR = /\.dkr\.ecr(?:-fips)?\./i;

type EcrModule = typeof import('../aws/ecr.js');
let ecrModule: Promise<EcrModule> | undefined;
const loadEcr = () => (ecrModule ??= import('../aws/ecr.js'));

const MiB = 1024 * 1024;

/**
 * How blobs are uploaded to ECR: in one streamed PUT (POST opens the
 * session, a PUT carries the whole blob and its digest), whatever the
 * blob's size, which ECR takes as any registry does.
 *
 * Not in chunks: ECR breaks the chunked protocol. It answers a PATCH with
 * 201 where the distribution spec says 202, and it keeps only the first
 * PATCH of an upload: later ones are answered as accepted while their
 * bytes are dropped and its Range header stops advancing. A blob of more
 * than one chunk therefore never arrives whole; the client notices the
 * Range that did not advance and sends the blob again in one PUT, so
 * chunking only ever cost a blob sent twice.
 *
 * The client still falls back to chunks if a registry refuses a
 * monolithic PUT (405, 413, 415, 501). Should ECR ever do that, its parts
 * must be 5 MiB at least (the last excepted), hence minChunkSize; a blob
 * that fits one PATCH (the client's 64 MiB chunks) still goes through,
 * and a larger one fails (the Range check, or ECR's digest check at the
 * final PUT) rather than being stored corrupt.
 */
export const ECR_UPLOADS: Pick<RegistryClientOptions, 'minChunkSize'> = {
  minChunkSize: 5 * MiB,
};

export class Registries {
  readonly #options: RegistriesOptions;
  readonly #clients = new Map<string, Registry>();
  readonly #ecr = new Map<string, EcrRepositories>();
  #ecrProvider?: Promise<CredentialProvider>;

  constructor(options: RegistriesOptions) {
    this.#options = options;
  }

  /** The client of a registry, created on first use. */
  registry(endpoint: RegistryEndpoint): Registry {
    const key = `${endpoint.scheme}://${endpoint.host}`;
    let client = this.#clients.get(key);
    if (!client) {
      const ecr = MAYBE_ECR.test(endpoint.host);
      client = new SharedBlobPushes(new RegistryClient({
        endpoint,
        credentials: ecr ? (host) => this.#ecrCredentials(host)
          : this.#options.credentials,
        logger: this.#options.logger,
        retry: this.#options.retry,
        ...(ecr ? ECR_UPLOADS : {}),
      }));
      this.#clients.set(key, client);
    }
    return client;
  }

  /** Creates an ECR repository before its first push; else nothing. */
  async prepareRepository(target: RegistryEndpoint, repository: string):
    Promise<void> {
    if (!MAYBE_ECR.test(target.host)) return;
    const { EcrRepositories, parseEcrHost } = await loadEcr();
    if (!parseEcrHost(target.host)) return;

    let repositories = this.#ecr.get(target.host);
    if (!repositories) {
      repositories = new EcrRepositories(target.host,
        { logger: this.#options.logger });
      this.#ecr.set(target.host, repositories);
    }
    await repositories.ensureRepository(repository);
  }

  /** ECR tokens from the role; other hosts to the given provider. */
  async #ecrCredentials(host: string) {
    this.#ecrProvider ??= loadEcr().then(({ ecrCredentialProvider }) =>
      ecrCredentialProvider({ fallback: this.#options.credentials,
        logger: this.#options.logger }));
    return (await this.#ecrProvider)(host);
  }
}

/** Blobs whose latest push this process remembers, for mounting. */
const REMEMBERED_PUSHES = 10_000;

type PushBlobOptions = BlobPushOptions & {
  onMountRefused?: (from: string) => void;
};

/**
 * A registry whose blob pushes know of each other: a push of a blob that
 * another repository of the registry is receiving, or received, waits for
 * that push and then mounts from there first; into the same repository it
 * sends nothing. A HEAD of a blob being pushed waits for the push, so a
 * copy that starts later finds the blob and skips it.
 */
export class SharedBlobPushes implements Registry {
  readonly endpoint: RegistryEndpoint;
  readonly #inner: Registry;
  /** Digest -> the pushes of it, by repository, first one first. */
  readonly #pushes = new Map<string, Map<string, Promise<unknown>>>();

  constructor(inner: Registry) {
    this.#inner = inner;
    this.endpoint = inner.endpoint;
  }

  pushBlob(repository: string, blob: Descriptor, source: BlobSource,
    options: PushBlobOptions = {}): Promise<BlobPushOutcome> {
    const earlier = this.#pushes.get(blob.digest) ?? new Map();
    const done = earlier.size > 0
      ? this.#after(earlier, repository, blob, source, options)
      : this.#inner.pushBlob(repository, blob, source, options);

    if (!earlier.has(repository)) earlier.set(repository, done);
    this.#pushes.delete(blob.digest);
    this.#pushes.set(blob.digest, earlier);
    while (this.#pushes.size > REMEMBERED_PUSHES) {
      this.#pushes.delete(this.#pushes.keys().next().value!);
    }
    return done;
  }

  /** Waits for a push of the blob in progress: it may be here after. */
  async headBlob(repository: string, digest: string, signal?: AbortSignal):
    Promise<BlobHead | undefined> {
    const pushes = this.#pushes.get(digest);
    if (pushes) await settled([...pushes.values()]);
    return this.#inner.headBlob(repository, digest, signal);
  }

  /** A push of a blob that other pushes of it came before. */
  async #after(earlier: Map<string, Promise<unknown>>, repository: string,
    blob: Descriptor, source: BlobSource, options: PushBlobOptions):
    Promise<BlobPushOutcome> {
    // into a repository that received it: nothing to send (reported as a
    // mount: linked without an upload)
    const same = earlier.get(repository);
    if (same) {
      await settled([same]);
      if (await this.#inner.headBlob(repository, blob.digest,
        options.signal)) {
        return { action: 'mounted', from: repository };
      }
    }

    // else mount from where it went first
    const [first, done] = [...earlier].find(([from]) => from !== repository)
      ?? [];
    if (done) await settled([done]);
    const others = (options.mountFrom ?? []).filter((from) => from !== first);
    return this.#inner.pushBlob(repository, blob, source, { ...options,
      mountFrom: first ? [first, ...others] : others });
  }

  headManifest(repository: string, reference: string, signal?: AbortSignal):
    Promise<ManifestHead | undefined> {
    return this.#inner.headManifest(repository, reference, signal);
  }

  getManifest(repository: string, reference: string, signal?: AbortSignal):
    Promise<Manifest> {
    return this.#inner.getManifest(repository, reference, signal);
  }

  putManifest(repository: string, reference: string, manifest: Manifest,
    signal?: AbortSignal): Promise<void> {
    return this.#inner.putManifest(repository, reference, manifest, signal);
  }

  openBlob(repository: string, digest: string, offset: number,
    signal?: AbortSignal): Promise<BlobStream> {
    return this.#inner.openBlob(repository, digest, offset, signal);
  }

  referrers(repository: string, digest: string, signal?: AbortSignal):
    Promise<Descriptor[] | undefined> {
    return this.#inner.referrers(repository, digest, signal);
  }

  listTags(repository: string, signal?: AbortSignal): Promise<string[]> {
    return this.#inner.listTags(repository, signal);
  }
}

/** Resolves when every promise has settled, whatever the outcome. */
async function settled(promises: Promise<unknown>[]): Promise<void> {
  await Promise.allSettled(promises);
}
