// Plain value types of the OCI Distribution world, apart from any behaviour.

export const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerManifestList:
    'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
} as const;

/** Media types whose document lists other manifests. */
export const INDEX_MEDIA_TYPES: readonly string[] = [
  MediaType.ociIndex,
  MediaType.dockerManifestList,
];

/** Media types whose document lists a config and layers. */
export const IMAGE_MEDIA_TYPES: readonly string[] = [
  MediaType.ociManifest,
  MediaType.dockerManifest,
];

/** Every manifest media type we read and write, for `Accept` headers. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  ...INDEX_MEDIA_TYPES,
  ...IMAGE_MEDIA_TYPES,
];

/** Layers that registries may refuse to serve or store (foreign layers). */
export const NON_DISTRIBUTABLE_LAYER = /\.(foreign|nondistributable)\./;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

/** An OCI image index or a Docker manifest list. */
export interface IndexDocument {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** An OCI image manifest (possibly an artifact) or a Docker schema 2. */
export interface ImageDocument {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** A registry endpoint: `host[:port]` and how to reach it. */
export interface RegistryEndpoint {
  host: string;
  /** `http` only for registries explicitly marked `http://`. */
  scheme: 'https' | 'http';
}

/** `[http://]HOST[:PORT]/REPOSITORY(:TAG|@DIGEST)`, parsed. */
export interface ImageReference {
  registry: RegistryEndpoint;
  repository: string;
  tag?: string;
  digest?: string;
}

export interface ManifestHead {
  digest: string;
  mediaType: string;
  size: number;
}

/** A manifest's exact bytes, as served: they are pushed unchanged. */
export interface Manifest extends ManifestHead {
  bytes: Uint8Array;
}

export interface BlobHead {
  digest: string;
  size: number;
}

/**
 * Progress of one blob: the bytes sent since the previous call. An upload
 * that starts over sends, and counts, its bytes again.
 */
export type BytesListener = (bytes: number) => void;

export interface BlobPushOptions {
  /**
   * Repositories of the same registry believed to hold the blob: a
   * cross-repository mount is tried from each in turn before uploading.
   */
  mountFrom?: readonly string[];
  onBytes?: BytesListener;
  signal?: AbortSignal;
}

/** How a blob reached the target. */
export type BlobPushOutcome =
  | { action: 'mounted'; from: string }
  | { action: 'uploaded'; bytes: number };

/**
 * The resource methods of one registry, as the copy engine sees them.
 * `RegistryClient` (client.ts) implements it over HTTP with auth, retries
 * and redirects; the engine never sees a request.
 */
export interface Registry {
  readonly endpoint: RegistryEndpoint;

  /** undefined when the registry answers 404 for the reference. */
  headManifest(repository: string, reference: string,
    signal?: AbortSignal): Promise<ManifestHead | undefined>;

  /** Throws NotFoundError on 404; IntegrityError if the bytes' sha256 is
   * not the digest asked for or announced. */
  getManifest(repository: string, reference: string,
    signal?: AbortSignal): Promise<Manifest>;

  /** Pushes the bytes unchanged under a tag or their digest. */
  putManifest(repository: string, reference: string, manifest: Manifest,
    signal?: AbortSignal): Promise<void>;

  /** undefined when the registry does not have the blob. */
  headBlob(repository: string, digest: string,
    signal?: AbortSignal): Promise<BlobHead | undefined>;

  /**
   * Streams a blob from `source` into this registry: mount when a
   * candidate repository holds it, else upload, verifying the sha256 while
   * streaming. Resumes or restarts broken downloads and retries transient
   * failures; never holds the blob in memory; leaves no upload session open.
   * A mount that did not happen is reported through `onMountRefused`:
   * refused (`insufficient_scope`, denied, unknown repository) or answered
   * 202 (the repository does not hold the blob, or the registry does not
   * mount); either way that location is not worth trying again.
   */
  pushBlob(repository: string, blob: Descriptor, source: BlobSource,
    options?: BlobPushOptions & {
      onMountRefused?: (from: string) => void;
    }): Promise<BlobPushOutcome>;

  /**
   * Opens a blob for reading from `offset` (a Range request; the answer
   * says where it really starts). Follows redirects without sending
   * credentials to another host. Throws NotFoundError on 404.
   */
  openBlob(repository: string, digest: string, offset: number,
    signal?: AbortSignal): Promise<BlobStream>;

  /** Descriptors of manifests whose subject is `digest`, or undefined when
   * the registry does not serve the referrers API. */
  referrers(repository: string, digest: string,
    signal?: AbortSignal): Promise<Descriptor[] | undefined>;

  /** Every tag of a repository, following pagination; [] for 404. */
  listTags(repository: string, signal?: AbortSignal): Promise<string[]>;
}

/** Where a blob's bytes come from: a repository of another registry. */
export interface BlobSource {
  registry: Registry;
  repository: string;
}

export interface BlobStream {
  body: ReadableStream<Uint8Array>;
  /** The offset the stream really starts at (0 when Range was ignored). */
  offset: number;
  /** Total size when the source told it. */
  size?: number;
}

/** Credentials for one registry host, as a Docker config entry holds. */
export type Credentials =
  | { username: string; password: string }
  /** An OAuth2 refresh token (`identitytoken` in a Docker config). */
  | { identityToken: string };

/**
 * Finds credentials for a registry host (`host[:port]`), or undefined for
 * anonymous access. Called again when a token must be renewed, so a
 * provider may hand out short-lived credentials (ECR).
 */
export type CredentialProvider =
  (host: string) => Promise<Credentials | undefined>;

/**
 * Where the registry client reports its decisions (debug) and fallbacks
 * (warn); quiet unless one is given. Powertools' Logger fits it.
 */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}
