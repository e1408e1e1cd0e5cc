// What a manifest is, from the registry's answer: its media type and its
// bytes, read whole but never more than a manifest can reasonably be.

import {
  ManifestInvalidError, type RegistryErrorContext,
} from './errors.js';
import { MANIFEST_MEDIA_TYPES, MediaType } from './types.js';

/** Registries refuse manifests above 4 MiB; so do we, when reading. */
export const DEFAULT_MAX_MANIFEST_SIZE = 4 * 1024 * 1024;

/** `application/vnd.oci.image.index.v1+json; charset=utf-8` -> the type. */
export function bareMediaType(contentType: string | null): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

/**
 * The media type of a manifest: the `Content-Type` when it names a manifest
 * type we handle, else the document's own `mediaType`, else its shape (an
 * OCI manifest may omit `mediaType`, and a registry may serve it as plain
 * JSON). Throws ManifestInvalidError for anything that is not a manifest
 * we handle.
 */
export function manifestMediaType(contentType: string | null,
  bytes: Uint8Array, context: RegistryErrorContext): string {
  const document = parseDocument(bytes, context);
  const served = bareMediaType(contentType);
  if (MANIFEST_MEDIA_TYPES.includes(served)) return served;

  const declared = typeof document.mediaType === 'string'
    ? document.mediaType : undefined;
  if (declared && MANIFEST_MEDIA_TYPES.includes(declared)) return declared;

  if (document.schemaVersion === 1 || declared?.includes('.v1+prettyjws')) {
    throw new ManifestInvalidError(context,
      'is a Docker schema 1 manifest, which is not supported', {
        hint: 'schema 1 is deprecated; push the image again with a ' +
          'current tool to get a schema 2 or OCI manifest',
      });
  }
  if (declared || (served && !isGenericType(served))) {
    throw new ManifestInvalidError(context,
      `has the unsupported media type ${declared ?? served}`, {
        hint: `supported: ${MANIFEST_MEDIA_TYPES.join(', ')}`,
      });
  }

  if (Array.isArray(document.manifests)) return MediaType.ociIndex;
  if (document.config && Array.isArray(document.layers)) {
    return MediaType.ociManifest;
  }
  throw new ManifestInvalidError(context,
    'is JSON but neither an image manifest nor an index');
}

/** Types a registry may serve a manifest as without saying which. */
function isGenericType(type: string): boolean {
  return type === 'application/json' || type === 'text/plain' ||
    type === 'application/octet-stream';
}

function parseDocument(bytes: Uint8Array, context: RegistryErrorContext):
  Record<string, unknown> {
  let document: unknown;
  try {
    document = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset,
      bytes.byteLength).toString('utf8'));
  } catch (error) {
    throw new ManifestInvalidError(context, 'is not valid JSON',
      { cause: error });
  }

  if (!document || typeof document !== 'object' || Array.isArray(document)) {
    throw new ManifestInvalidError(context, 'is not a JSON object');
  }
  return document as Record<string, unknown>;
}

/** A response body read whole, refusing one larger than `limit`. */
export async function readLimited(response: Response, limit: number,
  context: RegistryErrorContext): Promise<Uint8Array> {
  const tooLarge = (size: string) => new ManifestInvalidError(context,
    `is ${size}, more than the ${limit} bytes a manifest may have`, {
      hint: 'this is not a manifest a registry would accept',
    });

  const announced = Number(response.headers.get('content-length'));
  if (announced > limit) {
    await response.body?.cancel().catch(() => undefined);
    throw tooLarge(`${announced} bytes`);
  }
  if (!response.body) return new Uint8Array(0);

  const chunks: Uint8Array[] = [];
  let length = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;

    length += value.length;
    if (length > limit) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge('larger');
    }
    chunks.push(value);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length);
}
