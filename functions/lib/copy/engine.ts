// Copies one image, with its whole tree, from a source registry to a target.
//
// The order is what keeps the target consistent: blobs before the manifest
// that needs them, children before their index, referrers after their
// subject, tags last. So a manifest present on the target always has its
// whole tree there, and a tag never names an incomplete image. That is
// also what lets a later call (after a deadline) skip whatever exists.

import { InvalidInputError, NotFoundError } from '../errors.js';
import { isDigest } from '../registry/digest.js';
import type {
  BlobSource, Descriptor, Manifest, Registry,
} from '../registry/types.js';
import type { DigestStore } from '../store/types.js';
import { readManifest, type ManifestTree } from './manifest.js';
import type {
  BlobAction, CopyEvent, CopyLogger, CopyRequest, CopyResult,
} from './types.js';
import { Work } from './work.js';

const DEFAULT_CONCURRENCY = 4;

/** Indexes nest rarely and shallowly; deeper means a broken source. */
const MAX_INDEX_DEPTH = 8;

/** Referrers of referrers (a signature of an SBOM) are followed this far. */
const MAX_REFERRER_DEPTH = 3;

/** Mounts tried per blob before uploading it. */
const MAX_MOUNT_CANDIDATES = 3;

const QUIET: CopyLogger = { debug: () => {}, warn: () => {} };

/**
 * Copies `request.source` into `request.target`: tags already on the
 * digest cost one HEAD each; otherwise every missing manifest and blob is
 * copied, blobs the target knows of elsewhere are mounted, and the tags are
 * pushed last. Rejects with the first error (the target may then hold
 * blobs and child manifests, never the tags); returns 'incomplete' when
 * the deadline came first.
 */
export async function copyImage(request: CopyRequest): Promise<CopyResult> {
  return new ImageCopy(request).run();
}

/** A manifest fetched from the source and what it refers to. */
interface Node {
  manifest: Manifest;
  tree: ManifestTree;
}

/** A tree to copy next: its root digest, and a tag for it, if any. */
interface Root {
  digest: string;
  tag?: string;
}

class ImageCopy {
  readonly #request: CopyRequest;
  readonly #source: Registry;
  readonly #target: Registry;
  readonly #sourceRepo: string;
  readonly #targetRepo: string;
  readonly #store?: DigestStore;
  readonly #logger: CopyLogger;
  readonly #work: Work;
  readonly #started = Date.now();

  readonly #blobs: Record<BlobAction, number> =
    { uploaded: 0, mounted: 0, skipped: 0, foreign: 0 };
  readonly #foreign = new Set<string>();
  readonly #blobsSeen = new Set<string>();
  readonly #storeUpdates: Promise<void>[] = [];
  #bytesUploaded = 0;
  #manifestsPushed = 0;
  #noReferrersApi = false;

  constructor(request: CopyRequest) {
    const concurrency = request.concurrency ?? DEFAULT_CONCURRENCY;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
      throw new InvalidInputError(
        `concurrency must be a positive integer, got ${concurrency}`);
    }

    this.#request = request;
    this.#source = request.source.registry;
    this.#target = request.target.registry;
    this.#sourceRepo = request.source.repository;
    this.#targetRepo = request.target.repository;
    this.#store = request.store;
    this.#logger = request.logger ?? QUIET;
    this.#work = new Work(concurrency, request.signal);
  }

  async run(): Promise<CopyResult> {
    try {
      return await this.#run();
    } finally {
      // the caller may close the store next: let its writes land first
      await Promise.all(this.#storeUpdates);
    }
  }

  async #run(): Promise<CopyResult> {
    const digest = await this.#sourceDigest();
    const tags = [...new Set(this.#request.target.tags)];

    // the fast path: one HEAD per tag (by digest when there are none)
    let missing: string[] = [];
    let rootOnTarget: boolean;
    if (tags.length === 0) {
      rootOnTarget = await this.#onTarget(digest);
    } else {
      missing = await this.#tagsNotOn(digest, tags);

      // a manifest on the target has its whole tree there (pushed last)
      rootOnTarget = missing.length < tags.length ||
        await this.#onTarget(digest);
    }
    if (rootOnTarget && missing.length === 0) {
      this.#logger.debug('target is up to date', this.#fields({ digest }));
      return this.#result(digest, 'up-to-date');
    }

    let root: Manifest;
    let subjects: string[];
    if (rootOnTarget) {
      this.#logger.debug('image already on target, pushing tags',
        this.#fields({ digest, tags: missing }));
      root = await this.#target.getManifest(this.#targetRepo, digest,
        this.#work.signal);
      subjects = [digest];
    } else {
      const copied = await this.#copyTree(digest, false);
      if (!copied) return this.#result(digest, 'incomplete');
      root = copied.get(digest)!.manifest;
      subjects = [...copied.keys()];
    }

    if (this.#request.referrers) {
      const complete = await this.#copyReferrers(subjects);
      if (!complete) return this.#result(digest, 'incomplete');
    }

    await this.#pushTags(root, missing);
    return this.#result(digest, 'copied');
  }

  // the caller may know the digest already; else a tag costs one HEAD
  async #sourceDigest(): Promise<string> {
    const { reference, digest } = this.#request.source;
    if (digest) return digest;
    if (isDigest(reference)) return reference;

    const head = await this.#source.headManifest(this.#sourceRepo, reference,
      this.#work.signal);
    if (!head) {
      throw new NotFoundError(
        `${this.#source.endpoint.host}/${this.#sourceRepo}:${reference} ` +
        'not found', { hint: 'check the tag, and that the credentials can ' +
          'read the repository', status: 404 });
    }
    return head.digest;
  }

  /** Tags that do not resolve to `digest` on the target. */
  async #tagsNotOn(digest: string, tags: string[]): Promise<string[]> {
    const missing: string[] = [];
    await this.#work.settle(tags.map((tag) => this.#work.run(async () => {
      const head = await this.#target.headManifest(this.#targetRepo, tag,
        this.#work.signal);
      if (head?.digest !== digest) missing.push(tag);
    })));
    return tags.filter((tag) => missing.includes(tag));
  }

  async #onTarget(digest: string): Promise<boolean> {
    const head = await this.#target.headManifest(this.#targetRepo, digest,
      this.#work.signal);
    return head !== undefined;
  }

  /**
   * Copies the tree under `digest`: walk, blobs, manifests bottom up.
   * Returns the manifests pushed, or undefined when the deadline stopped
   * it before every blob was copied.
   */
  async #copyTree(digest: string, checkTarget: boolean):
    Promise<Map<string, Node> | undefined> {
    const nodes = await this.#walk(digest, checkTarget);
    if (nodes.size === 0) return nodes;

    const blobs = new Map<string, Descriptor>();
    for (const { tree } of nodes.values()) {
      for (const blob of tree.blobs) blobs.set(blob.digest, blob);
      for (const layer of tree.foreign) this.#noteForeign(layer);
    }
    const newBlobs = [...blobs.values()]
      .filter((blob) => !this.#blobsSeen.has(blob.digest));

    this.#emit({ type: 'plan', digest, manifests: nodes.size,
      blobs: newBlobs.length,
      bytes: newBlobs.reduce((sum, blob) => sum + blob.size, 0) });

    if (!await this.#copyBlobs(newBlobs)) return undefined;
    await this.#pushManifests(nodes);
    return nodes;
  }

  /**
   * Fetches the manifests under `root` from the source, children in
   * parallel. A child the target has is not followed: its tree is there.
   */
  async #walk(root: string, checkTarget: boolean):
    Promise<Map<string, Node>> {
    const nodes = new Map<string, Node>();
    const seen = new Set<string>();
    const origin = { registry: this.#source.endpoint.host,
      repository: this.#sourceRepo };

    const visit = async (digest: string, depth: number, check: boolean) => {
      if (seen.has(digest)) return;
      seen.add(digest);
      if (depth > MAX_INDEX_DEPTH) {
        throw new InvalidInputError(`manifest ${root} in ` +
          `${origin.registry}/${origin.repository} nests indexes more ` +
          `than ${MAX_INDEX_DEPTH} deep`);
      }

      const node = await this.#work.run(async () => {
        if (check && await this.#onTarget(digest)) return undefined;

        const manifest = await this.#source.getManifest(this.#sourceRepo,
          digest, this.#work.signal);
        return { manifest, tree: readManifest(manifest, origin) };
      });
      if (!node) return;

      nodes.set(digest, node);
      await Promise.allSettled(node.tree.manifests.map((child) =>
        visit(child.digest, depth + 1, true).catch((error: unknown) =>
          this.#work.fail(error))));
    };

    await visit(root, 0, checkTarget).catch((error: unknown) =>
      this.#work.fail(error));
    this.#work.check();
    return nodes;
  }

  /** Copies blobs, largest first; false when the deadline stopped it. */
  async #copyBlobs(blobs: Descriptor[]): Promise<boolean> {
    let stopped = false;
    const ordered = [...blobs].sort((a, b) => b.size - a.size);

    await this.#work.settle(ordered.map((blob) => this.#work.run(async () => {
      if (this.#pastDeadline()) {
        stopped = true;
        return;
      }
      if (this.#blobsSeen.has(blob.digest)) return;

      this.#blobsSeen.add(blob.digest);
      await this.#copyBlob(blob);
    })));

    if (stopped) {
      this.#logger.debug('deadline reached, blobs left for a later call',
        this.#fields({}));
    }
    return !stopped;
  }

  /** Skip what the target has, else mount, else upload. */
  async #copyBlob(blob: Descriptor): Promise<void> {
    const { digest, size } = blob;
    const signal = this.#work.signal;

    if (await this.#target.headBlob(this.#targetRepo, digest, signal)) {
      this.#blobs.skipped++;
      this.#emit({ type: 'blob-done', digest, size, action: 'skipped' });
      return;
    }

    const mountFrom = await this.#mountCandidates(digest);
    this.#emit({ type: 'blob-start', digest, size });

    const source: BlobSource = { registry: this.#source,
      repository: this.#sourceRepo };
    const outcome = await this.#target.pushBlob(this.#targetRepo, blob,
      source, {
        mountFrom,
        signal,
        onBytes: (bytes) => this.#emit({ type: 'blob-bytes', digest, bytes }),
        onMountRefused: (from) => {
          this.#logger.debug('mount refused', this.#fields({ digest, from }));
          this.#emit({ type: 'mount-refused', digest, from });
          this.#forget(from, digest);
        },
      });

    if (outcome.action === 'mounted') {
      this.#blobs.mounted++;
      this.#emit({ type: 'blob-done', digest, size, action: 'mounted',
        from: outcome.from });
      return;
    }
    this.#blobs.uploaded++;
    this.#bytesUploaded += outcome.bytes;
    this.#emit({ type: 'blob-done', digest, size, action: 'uploaded' });
  }

  /**
   * Repositories of the target registry that may hold the blob: the
   * source repository when both are one registry, then the store's.
   */
  async #mountCandidates(digest: string): Promise<string[]> {
    const candidates: string[] = [];
    const source = this.#source.endpoint;
    const target = this.#target.endpoint;
    if (source.host === target.host && source.scheme === target.scheme &&
      this.#sourceRepo !== this.#targetRepo) {
      candidates.push(this.#sourceRepo);
    }
    if (!this.#store) return candidates;

    let located: string[] = [];
    try {
      located = await this.#store.locate(target.host, digest);
    } catch (error) {
      this.#logger.warn('digest store lookup failed, uploading instead',
        this.#fields({ digest, error: String(error) }));
    }

    for (const repository of located) {
      // the store was wrong: the HEAD just said this repository lacks it
      if (repository === this.#targetRepo) {
        this.#forget(repository, digest);
      } else if (!candidates.includes(repository)) {
        candidates.push(repository);
      }
    }
    return candidates.slice(0, MAX_MOUNT_CANDIDATES);
  }

  /** Pushes manifests by digest, every child before its index. */
  async #pushManifests(nodes: Map<string, Node>): Promise<void> {
    const heights = new Map<string, number>();
    const height = (digest: string): number => {
      const known = heights.get(digest);
      if (known !== undefined) return known;

      const children = nodes.get(digest)?.tree.manifests ?? [];
      const own = Math.max(-1, ...children
        .filter((child) => nodes.has(child.digest))
        .map((child) => height(child.digest))) + 1;
      heights.set(digest, own);
      return own;
    };

    const levels: string[][] = [];
    for (const digest of nodes.keys()) {
      (levels[height(digest)] ??= []).push(digest);
    }

    for (const level of levels) {
      await this.#work.settle((level ?? []).map((digest) =>
        this.#work.run(() => this.#pushManifest(digest, nodes.get(digest)!))));
    }
  }

  async #pushManifest(digest: string, node: Node): Promise<void> {
    await this.#target.putManifest(this.#targetRepo, digest, node.manifest,
      this.#work.signal);
    this.#manifestsPushed++;
    this.#emit({ type: 'manifest-pushed', digest,
      mediaType: node.manifest.mediaType });

    // only now: a registry (ECR) mounts only blobs a manifest references
    if (this.#store && node.tree.blobs.length > 0) {
      const digests = node.tree.blobs.map((blob) => blob.digest);
      this.#track(this.#store.remember(this.#target.endpoint.host,
        this.#targetRepo, digests), 'remember');
    }
  }

  /**
   * Copies what refers to the copied manifests, then what refers to
   * those, a few levels deep. False when the deadline stopped it.
   */
  async #copyReferrers(subjects: string[]): Promise<boolean> {
    const handled = new Set(subjects);
    let current = subjects;

    for (let depth = 0; depth < MAX_REFERRER_DEPTH; depth++) {
      const roots = (await this.#findReferrers(current))
        .filter((root) => !handled.has(root.digest));
      if (roots.length === 0) break;

      const next: string[] = [];
      for (const root of roots) {
        handled.add(root.digest);
        if (this.#pastDeadline()) return false;

        const pushed = await this.#copyReferrer(root);
        if (!pushed) return false;

        // a referrers tag index only lists referrers: they are its children
        for (const digest of pushed) {
          if (digest !== root.digest || !root.tag) next.push(digest);
        }
      }
      current = next;
    }
    return true;
  }

  /** Copies one referrer (or referrers tag index); the digests pushed. */
  async #copyReferrer(root: Root): Promise<string[] | undefined> {
    if (root.tag) {
      const head = await this.#target.headManifest(this.#targetRepo,
        root.tag, this.#work.signal);
      if (head?.digest === root.digest) return [];
    }

    const nodes = await this.#copyTree(root.digest, true);
    if (!nodes) return undefined;

    if (root.tag) {
      const manifest = nodes.get(root.digest)?.manifest ??
        await this.#target.getManifest(this.#targetRepo, root.digest,
          this.#work.signal);
      await this.#pushTags(manifest, [root.tag]);
    }
    return [...nodes.keys()];
  }

  /**
   * Referrers of each subject: the referrers API where the source serves
   * it, else the referrers tag schema (an index tagged `sha256-<hex>`).
   */
  async #findReferrers(subjects: string[]): Promise<Root[]> {
    const roots: Root[] = [];

    await this.#work.settle(subjects.map((subject) =>
      this.#work.run(async () => {
        const signal = this.#work.signal;
        if (!this.#noReferrersApi) {
          const listed = await this.#source.referrers(this.#sourceRepo,
            subject, signal);
          if (listed) {
            roots.push(...listed.map((d) => ({ digest: d.digest })));
            return;
          }
          if (!this.#noReferrersApi) {
            this.#noReferrersApi = true;
            this.#logger.debug('source lacks the referrers API, using the ' +
              'referrers tag schema', this.#fields({}));
          }
        }

        const tag = subject.replace(':', '-');
        const head = await this.#source.headManifest(this.#sourceRepo, tag,
          signal);
        if (head) roots.push({ digest: head.digest, tag });
      })));

    const unique = new Map(roots.map((root) => [root.digest, root]));
    return [...unique.values()];
  }

  async #pushTags(manifest: Manifest, tags: string[]): Promise<void> {
    for (const tag of tags) {
      await this.#target.putManifest(this.#targetRepo, tag, manifest,
        this.#work.signal);
      this.#emit({ type: 'tag-pushed', tag, digest: manifest.digest });
    }
  }

  #noteForeign(layer: Descriptor): void {
    if (this.#foreign.has(layer.digest)) return;

    this.#foreign.add(layer.digest);
    this.#blobs.foreign++;
    this.#emit({ type: 'blob-done', digest: layer.digest, size: layer.size,
      action: 'foreign' });
  }

  #forget(repository: string, digest: string): void {
    if (!this.#store) return;
    this.#track(this.#store.forget(this.#target.endpoint.host, repository,
      digest), 'forget');
  }

  // the store is a cache of where blobs are: its failures cost mounts only
  #track(update: Promise<void>, what: string): void {
    this.#storeUpdates.push(update.catch((error: unknown) => {
      this.#logger.warn(`digest store ${what} failed`,
        this.#fields({ error: String(error) }));
    }));
  }

  #pastDeadline(): boolean {
    const { deadline } = this.#request;
    return deadline !== undefined && Date.now() >= deadline;
  }

  #emit(event: CopyEvent): void {
    this.#request.onEvent?.(event);
  }

  #fields(extra: Record<string, unknown>): Record<string, unknown> {
    return { source: `${this.#source.endpoint.host}/${this.#sourceRepo}`,
      target: `${this.#target.endpoint.host}/${this.#targetRepo}`,
      ...extra };
  }

  #result(digest: string, status: CopyResult['status']): CopyResult {
    return {
      digest,
      status,
      blobs: { ...this.#blobs },
      bytesUploaded: this.#bytesUploaded,
      manifestsPushed: this.#manifestsPushed,
      foreignLayers: [...this.#foreign],
      durationMs: Date.now() - this.#started,
    };
  }
}
