// Content digests: syntax, computation, and incremental checks.

import { createHash, type Hash } from 'node:crypto';

/** The algorithms we can verify, with the hex length of their digests. */
const ALGORITHMS: Readonly<Record<string, number>> = {
  sha256: 64,
  sha512: 128,
};

const DIGEST_SYNTAX = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/** True for a digest we can verify: `sha256:<64 hex>` or `sha512:<128>`. */
export function isDigest(text: string): boolean {
  const match = DIGEST_SYNTAX.exec(text);
  if (!match) return false;

  const length = ALGORITHMS[match[1]!];
  return length !== undefined && match[2]!.length === length &&
    /^[a-f0-9]+$/.test(match[2]!);
}

/** Why `text` is not a digest we accept, or undefined when it is one. */
export function digestProblem(text: string): string | undefined {
  const match = DIGEST_SYNTAX.exec(text);
  if (!match) return 'a digest is ALGORITHM:HEX, e.g. sha256:<64 hex digits>';

  const length = ALGORITHMS[match[1]!];
  if (length === undefined) {
    return `unsupported digest algorithm "${match[1]}" (sha256 or sha512)`;
  }
  if (match[2]!.length !== length || !/^[a-f0-9]+$/.test(match[2]!)) {
    return `a ${match[1]} digest has ${length} lowercase hex digits`;
  }
  return undefined;
}

/** The hash that computes digests like `digest` (sha256 by default). */
export function hashFor(digest?: string): Hash {
  const algorithm = digest?.slice(0, digest.indexOf(':'));
  return createHash(algorithm && ALGORITHMS[algorithm] ? algorithm : 'sha256');
}

/** `algorithm:hex` of a finished hash, named like `like`. */
export function hashDigest(hash: Hash, like?: string): string {
  const algorithm = like && like.startsWith('sha512:') ? 'sha512' : 'sha256';
  return `${algorithm}:${hash.digest('hex')}`;
}

/** The digest of bytes, with the algorithm of `like` (sha256 default). */
export function digestOf(bytes: Uint8Array, like?: string): string {
  return hashDigest(hashFor(like).update(bytes), like);
}
