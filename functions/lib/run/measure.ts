// What a copy would move, without moving anything: for a dry run.
//
// Reads the image's manifests from the source and asks the target which
// blobs it already has; writes nothing anywhere. A manifest the target
// already holds has its whole tree there (the engine pushes trees bottom
// up), so its subtree is not walked.

import { readManifest } from '../copy/manifest.js';
import type { BlobAction } from '../copy/types.js';
import type { Registry } from '../registry/types.js';
import type { DigestStore } from '../store/types.js';

export interface Measure {
  blobs: Record<BlobAction, number>;
  /** Bytes that would be uploaded. */
  bytes: number;
}

export interface MeasureRequest {
  source: { registry: Registry; repository: string };
  target: { registry: Registry; repository: string };
  digest: string;
  store?: DigestStore;
  signal?: AbortSignal;
}

/** Nested indexes are rare and shallow; deeper means a broken source. */
const MAX_DEPTH = 8;

export async function measureImage(request: MeasureRequest):
  Promise<Measure> {
  const { source, target, store, signal } = request;
  const measure: Measure = {
    blobs: { uploaded: 0, mounted: 0, skipped: 0, foreign: 0 },
    bytes: 0,
  };
  const seenManifests = new Set<string>();
  const seenBlobs = new Set<string>();

  const walk = async (digest: string, depth: number): Promise<void> => {
    if (seenManifests.has(digest) || depth > MAX_DEPTH) return;
    seenManifests.add(digest);

    if (await target.registry.headManifest(target.repository, digest,
      signal)) {
      return;
    }

    const manifest = await source.registry.getManifest(source.repository,
      digest, signal);
    const tree = readManifest(manifest, {
      registry: source.registry.endpoint.host,
      repository: source.repository,
    });

    measure.blobs.foreign += tree.foreign.length;
    for (const blob of tree.blobs) {
      if (seenBlobs.has(blob.digest)) continue;
      seenBlobs.add(blob.digest);

      if (await target.registry.headBlob(target.repository, blob.digest,
        signal)) {
        measure.blobs.skipped++;
      } else if (store && (await store.locate(target.registry.endpoint.host,
        blob.digest)).length > 0) {
        measure.blobs.mounted++;
      } else {
        measure.blobs.uploaded++;
        measure.bytes += blob.size;
      }
    }

    for (const child of tree.manifests) await walk(child.digest, depth + 1);
  };

  await walk(request.digest, 0);
  return measure;
}
