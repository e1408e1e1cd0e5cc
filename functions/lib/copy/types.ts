// The copy engine's contract: what it is asked and what it reports.

import type { Registry } from '../registry/types.js';
import type { DigestStore } from '../store/types.js';

/** Debug output for decisions, warnings for fallbacks; silent by default. */
export interface CopyLogger {
  debug(message: string, fields: Record<string, unknown>): void;
  warn(message: string, fields: Record<string, unknown>): void;
}

export interface CopyRequest {
  source: { registry: Registry; repository: string;
    /** A tag or a digest. */
    reference: string;
    /**
     * The manifest digest the reference resolves to, when the caller
     * already knows it (the org run gets it from the GitHub API): an
     * up-to-date target is then recognised without asking the source.
     */
    digest?: string };
  target: { registry: Registry; repository: string;
    /** Tags to point at the image, pushed last; none copies by digest. */
    tags: string[] };
  /** Mount candidates and where blobs went; optional for one-off copies. */
  store?: DigestStore;
  /** Blobs streamed (and manifests fetched) at once. Default 4. */
  concurrency?: number;
  /**
   * Copy manifests whose subject is a copied manifest: from the referrers
   * API, or where the source lacks it, from the `sha256-<hex>` tag of the
   * referrers tag schema (that tag is copied too). Default false.
   */
  referrers?: boolean;
  /**
   * Stop starting new blobs after this time (epoch ms) and return status
   * 'incomplete' without pushing the tags; blobs already started finish.
   * A later call skips what was copied and finishes.
   */
  deadline?: number;
  /** Aborts every request; the copy then rejects with InterruptedError. */
  signal?: AbortSignal;
  onEvent?: (event: CopyEvent) => void;
  logger?: CopyLogger;
}

export type BlobAction = 'uploaded' | 'mounted' | 'skipped' | 'foreign';

export type CopyEvent =
  /**
   * Work a walk of a tree found: manifests to push, distributable blobs
   * and their bytes (some will turn out to be on the target already). A
   * copy with referrers walks several trees; totals add up.
   */
  | { type: 'plan'; digest: string; manifests: number; blobs: number;
      bytes: number }
  /** A blob the target lacks starts to be mounted or uploaded. */
  | { type: 'blob-start'; digest: string; size: number }
  /** Bytes of a blob sent since its previous event. */
  | { type: 'blob-bytes'; digest: string; bytes: number }
  | { type: 'blob-done'; digest: string; size: number; action: BlobAction;
      from?: string }
  | { type: 'manifest-pushed'; digest: string; mediaType: string }
  | { type: 'tag-pushed'; tag: string; digest: string }
  | { type: 'mount-refused'; digest: string; from: string };

export interface CopyResult {
  digest: string;
  /**
   * up-to-date: every tag already resolved to the digest (one HEAD each;
   * by digest when there are no tags). incomplete: the deadline came
   * first and no tag was pushed.
   */
  status: 'copied' | 'up-to-date' | 'incomplete';
  blobs: Record<BlobAction, number>;
  bytesUploaded: number;
  manifestsPushed: number;
  /** Digests of non-distributable layers left out. */
  foreignLayers: string[];
  durationMs: number;
}
