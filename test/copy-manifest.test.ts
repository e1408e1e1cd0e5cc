// readManifest: what the copy follows in a manifest, and what it refuses.
// A pure function over bytes, so tested table by table.

import { describe, expect, it } from 'vitest';

import { readManifest } from '../functions/lib/copy/manifest.js';
import { InvalidInputError } from '../functions/lib/errors.js';
import { MediaType, type Manifest } from '../functions/lib/registry/types.js';

const ORIGIN = { registry: 'ghcr.io', repository: 'acme/app' };
const DIGEST = `sha256:${'ab'.repeat(32)}`;
const d = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const CONFIG = 'application/vnd.oci.image.config.v1+json';

/** A manifest as a registry serves it: exact bytes and a Content-Type. */
function served(document: unknown,
  contentType: string = MediaType.ociManifest): Manifest {
  const bytes = Buffer.from(typeof document === 'string' ? document
    : JSON.stringify(document));
  return { digest: DIGEST, mediaType: contentType, size: bytes.length, bytes };
}

const image = {
  schemaVersion: 2,
  mediaType: MediaType.ociManifest,
  config: { mediaType: CONFIG, digest: d(1), size: 10 },
  layers: [{ mediaType: LAYER, digest: d(2), size: 20 }],
};

describe('readManifest', () => {
  it('finds the config and layers of an image manifest', () => {
    // Act
    const tree = readManifest(served(image), ORIGIN);

    // Assess
    expect(tree.kind).toBe('image');
    expect(tree.blobs.map((b) => b.digest)).toEqual([d(1), d(2)]);
    expect(tree.manifests).toEqual([]);
  });

  it('finds the children of an index', () => {
    // Prepare
    const index = { schemaVersion: 2, mediaType: MediaType.ociIndex,
      manifests: [
        { mediaType: MediaType.ociManifest, digest: d(3), size: 300 },
        { mediaType: MediaType.ociIndex, digest: d(4), size: 400 },
      ] };

    // Act
    const tree = readManifest(served(index, MediaType.ociIndex), ORIGIN);

    // Assess
    expect(tree.kind).toBe('index');
    expect(tree.manifests.map((m) => m.digest)).toEqual([d(3), d(4)]);
    expect(tree.blobs).toEqual([]);
  });

  it.each([
    ['the Content-Type', MediaType.dockerManifestList, 'index'],
    ['the Content-Type', MediaType.ociManifest, 'image'],
    ['its shape, when the Content-Type says nothing', 'application/json',
      'image'],
  ])('tells a manifest without mediaType by %s (%s)', (_, type, kind) => {
    // Prepare
    const { mediaType: _omitted, ...bare } = image;
    const document = kind === 'index'
      ? { schemaVersion: 2, manifests: [] } : bare;

    // Act
    const tree = readManifest(served(document, type), ORIGIN);

    // Assess
    expect(tree.kind).toBe(kind);
  });

  it('leaves out layers with a non-distributable type or external urls',
    () => {
      // Prepare
      const document = { ...image, layers: [
        { mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.' +
          'tar.gzip', digest: d(5), size: 1,
        urls: ['https://example.com/l'] },
        { mediaType: 'application/vnd.oci.image.layer.nondistributable.' +
          'v1.tar+gzip', digest: d(6), size: 1 },
        { mediaType: LAYER, digest: d(7), size: 1,
          urls: ['https://example.com/m'] },
        { mediaType: LAYER, digest: d(8), size: 1 },
      ] };

      // Act
      const tree = readManifest(served(document), ORIGIN);

      // Assess
      expect(tree.foreign.map((l) => l.digest)).toEqual([d(5), d(6), d(7)]);
      expect(tree.blobs.map((b) => b.digest)).toEqual([d(1), d(8)]);
    });

  it('reports a subject without following it', () => {
    // Prepare
    const subject = { mediaType: MediaType.ociManifest, digest: d(9),
      size: 9 };

    // Act
    const tree = readManifest(served({ ...image, subject }), ORIGIN);

    // Assess
    expect(tree.subject).toEqual(subject);
    expect(tree.blobs.map((b) => b.digest)).not.toContain(d(9));
  });

  it.each([
    ['not JSON', '{"schemaVersion": 2,', /not JSON/],
    ['a JSON array', '[]', /not a JSON object/],
    ['schema 1', { schemaVersion: 1, mediaType:
      'application/vnd.docker.distribution.manifest.v1+prettyjws' },
    /schema 1/],
    ['schemaVersion 3', { ...image, schemaVersion: 3 }, /schemaVersion/],
    ['an unknown mediaType', { ...image, mediaType: 'text/plain' },
      /unknown media type/],
    ['an image manifest without config', { schemaVersion: 2, layers: [] },
      /config is not a descriptor/],
    ['an index without a list', { schemaVersion: 2,
      mediaType: MediaType.ociIndex, manifests: {} }, /"manifests"/],
    ['a layer with a bad digest', { ...image, layers: [
      { mediaType: LAYER, digest: 'sha256:xyz', size: 1 }] },
    /layers\[0\] has an invalid digest/],
    ['a layer with a negative size', { ...image, layers: [
      { mediaType: LAYER, digest: d(2), size: -1 }] },
    /layers\[0\] has an invalid size/],
    ['a config without mediaType', { ...image, config: { digest: d(1),
      size: 1 } }, /config has no mediaType/],
  ])('refuses %s with InvalidInputError naming the digest',
    (_, document, problem) => {
      // Act
      const read = () => readManifest(served(document), ORIGIN);

      // Assess
      expect(read).toThrow(InvalidInputError);
      expect(read).toThrow(problem);
      expect(read).toThrow(`manifest ${DIGEST} in ghcr.io/acme/app`);
    });

  it('refuses a document of neither shape whose type nothing says', () => {
    // Act
    const read = () => readManifest(
      served({ schemaVersion: 2 }, 'application/json'), ORIGIN);

    // Assess
    expect(read).toThrow(InvalidInputError);
    expect(read).toThrow(/neither an index nor an image manifest/);
  });
});
