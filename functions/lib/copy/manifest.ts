// Reading manifests for the walk: which manifests and blobs one needs.
//
// The bytes are pushed unchanged, so nothing here rewrites a manifest; it
// only finds the descriptors to follow, and refuses a document it cannot
// trust to list them all.

import { InvalidInputError } from '../errors.js';
import { isDigest } from '../registry/digest.js';
import {
  IMAGE_MEDIA_TYPES, INDEX_MEDIA_TYPES, NON_DISTRIBUTABLE_LAYER,
  type Descriptor, type Manifest,
} from '../registry/types.js';

/** What a manifest refers to, as the copy needs it. */
export interface ManifestTree {
  kind: 'index' | 'image';
  /** Child manifests of an index (none for an image). */
  manifests: Descriptor[];
  /** Config and distributable layers of an image, in document order. */
  blobs: Descriptor[];
  /** Layers left out: non-distributable, or with external `urls`. */
  foreign: Descriptor[];
  /** Not followed: a subject is copied on its own, not as a child. */
  subject?: Descriptor;
}

/** Where a manifest came from, for error messages. */
export interface ManifestOrigin {
  registry: string;
  repository: string;
}

const SCHEMA1 = /^application\/vnd\.docker\.distribution\.manifest\.v1/;

/**
 * Finds a manifest's children or blobs. Throws InvalidInputError naming
 * the digest when the document is not a well-formed index or image
 * manifest.
 */
export function readManifest(manifest: Manifest, origin: ManifestOrigin):
  ManifestTree {
  const fail = (problem: string): never => {
    throw new InvalidInputError(
      `manifest ${manifest.digest} in ${origin.registry}/` +
      `${origin.repository} cannot be copied: ${problem}`,
      { hint: 'inspect it with `skopeo inspect --raw`; only OCI image ' +
        'indexes and manifests and Docker schema 2 manifests and ' +
        'manifest lists are copied' });
  };

  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(manifest.bytes).toString('utf8'));
  } catch {
    return fail('it is not JSON');
  }
  if (!isObject(body)) return fail('it is not a JSON object');

  const kind = kindOf(manifest.mediaType, body, fail);
  if (body.schemaVersion !== 2) {
    return fail(`schemaVersion is ${JSON.stringify(body.schemaVersion)}, ` +
      'expected 2');
  }

  const subject = body.subject === undefined ? undefined
    : descriptor(body.subject, 'subject', fail);

  if (kind === 'index') {
    if (!Array.isArray(body.manifests)) {
      return fail('an index without a "manifests" list');
    }
    const manifests = body.manifests.map((item, i) =>
      descriptor(item, `manifests[${i}]`, fail));
    return { kind, manifests, blobs: [], foreign: [], subject };
  }

  const config = descriptor(body.config, 'config', fail);
  if (!Array.isArray(body.layers)) {
    return fail('an image manifest without a "layers" list');
  }
  const layers = body.layers.map((item, i) =>
    descriptor(item, `layers[${i}]`, fail));

  const foreign = layers.filter(isForeign);
  const blobs = [config, ...layers.filter((layer) => !isForeign(layer))];
  return { kind, manifests: [], blobs, foreign, subject };
}

/**
 * True for a layer that registries may not serve: a non-distributable
 * media type, or one that names external `urls` to fetch it from.
 */
export function isForeign(layer: Descriptor): boolean {
  return NON_DISTRIBUTABLE_LAYER.test(layer.mediaType) ||
    (layer.urls !== undefined && layer.urls.length > 0);
}

// the body's own mediaType wins (it is what the digest covers); the
// Content-Type decides when the body has none; the shape decides last
function kindOf(contentType: string, body: Record<string, unknown>,
  fail: (problem: string) => never): 'index' | 'image' {
  const declared = typeof body.mediaType === 'string' ? body.mediaType
    : undefined;

  for (const type of [declared, contentType]) {
    if (type === undefined || type === '') continue;
    if (INDEX_MEDIA_TYPES.includes(type)) return 'index';
    if (IMAGE_MEDIA_TYPES.includes(type)) return 'image';
    if (SCHEMA1.test(type)) {
      return fail('Docker schema 1 manifests are not supported');
    }
    if (type === declared) {
      return fail(`unknown media type "${declared}"`);
    }
  }

  if (Array.isArray(body.manifests)) return 'index';
  if (body.config !== undefined && Array.isArray(body.layers)) return 'image';
  return fail('neither an index nor an image manifest');
}

function descriptor(value: unknown, where: string,
  fail: (problem: string) => never): Descriptor {
  if (!isObject(value)) return fail(`${where} is not a descriptor`);

  const { mediaType, digest, size, urls } = value;
  if (typeof mediaType !== 'string' || mediaType === '') {
    return fail(`${where} has no mediaType`);
  }
  if (typeof digest !== 'string' || !isDigest(digest)) {
    return fail(`${where} has an invalid digest ${JSON.stringify(digest)}`);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    return fail(`${where} has an invalid size ${JSON.stringify(size)}`);
  }
  if (urls !== undefined && (!Array.isArray(urls) ||
    !urls.every((url) => typeof url === 'string'))) {
    return fail(`${where} has invalid urls`);
  }

  return value as unknown as Descriptor;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
