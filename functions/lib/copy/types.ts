// The copy engine's contract: what it is asked and what it reports.

import type { Registry } from '../registry/types.js';
import type { DigestStore } from '../store/types.js';

export interface CopyRequest {
  source: { registry: Registry; repository: string;
    /** A tag or a digest. */
    reference: string };
  target: { registry: Registry; repository: string;
    /** Tags to point at the image, pushed last; none copies by digest. */
    tags: string[] };
  /** Mount candidates and where blobs went; optional for one-off copies. */
  store?: DigestStore;
  /** Blobs streamed at once. Default 4. */
  concurrency?: number;
  /** Copy manifests whose subject is a copied manifest (referrers API). */
  referrers?: boolean;
  /**
   * Stop starting new work after this time (epoch ms) and return status
   * 'incomplete'; a later call skips what was copied and finishes.
   */
  deadline?: number;
  signal?: AbortSignal;
  onEvent?: (event: CopyEvent) => void;
}

export type BlobAction = 'uploaded' | 'mounted' | 'skipped' | 'foreign';

export type CopyEvent =
  | { type: 'plan'; digest: string; manifests: number; blobs: number;
      bytes: number }
  | { type: 'blob-start'; digest: string; size: number }
  | { type: 'blob-bytes'; digest: string; bytes: number }
  | { type: 'blob-done'; digest: string; size: number; action: BlobAction;
      from?: string }
  | { type: 'manifest-pushed'; digest: string; mediaType: string }
  | { type: 'tag-pushed'; tag: string; digest: string }
  | { type: 'mount-refused'; digest: string; from: string };

export interface CopyResult {
  digest: string;
  /** up-to-date: every tag already resolved to the digest (one HEAD each). */
  status: 'copied' | 'up-to-date' | 'incomplete';
  blobs: Record<BlobAction, number>;
  bytesUploaded: number;
  manifestsPushed: number;
  /** Digests of non-distributable layers left out. */
  foreignLayers: string[];
  durationMs: number;
}
