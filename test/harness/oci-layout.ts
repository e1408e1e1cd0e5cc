// OCI image layouts written by the tests, from a seeded random source.
//
// Every byte derives from the layout's seed, logged at creation: set
// HARNESS_SEED to the logged value to write the same layouts again. Layers
// are a one-file tar of random bytes, gzipped or not, written while they
// are generated, so a layer of any size never sits in memory.

import {
  createCipheriv, createHash, randomBytes,
} from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import type { Writable } from 'node:stream';
import { createGzip, type Gzip } from 'node:zlib';

import { makeTempDir, onStopAll, removeDir } from './process.js';

export const OciMediaType = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layerTar: 'application/vnd.oci.image.layer.v1.tar',
  empty: 'application/vnd.oci.empty.v1+json',
} as const;

export const DockerMediaType = {
  manifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  manifest: 'application/vnd.docker.distribution.manifest.v2+json',
  config: 'application/vnd.docker.container.image.v1+json',
  layerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export interface FixturePlatform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface FixtureDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: FixturePlatform;
  annotations?: Record<string, string>;
  artifactType?: string;
}

/** One image or index written into a layout, and all it contains. */
export interface Fixture {
  layoutDir: string;
  /** The name in the layout's index.json: push `oci:DIR:REF`. */
  ref: string;
  /** The top manifest or index. */
  digest: string;
  mediaType: string;
  size: number;
  descriptor: FixtureDescriptor;
  /** Every manifest and index of the tree, the top one first. */
  manifests: FixtureDescriptor[];
  /** Every config and layer of the tree, each digest once. */
  blobs: FixtureDescriptor[];
  /** For a single image: its config and its layers, in order. */
  config?: FixtureDescriptor;
  layers?: FixtureDescriptor[];
}

export type LayerCompression = 'gzip' | 'none';

export interface ImageOptions {
  /** Default: a name made from a counter. */
  ref?: string;
  /** 'oci' (default) or 'docker' schema 2 media types. */
  format?: 'oci' | 'docker';
  /** Layers reused as they are, below the new ones (a shared base). */
  baseLayers?: readonly FixtureDescriptor[];
  /** Sizes of the random payload of each new layer; default [2048, 4096]. */
  layerSizes?: readonly number[];
  /** New layers gzipped (default) or plain tar (OCI format only). */
  compression?: LayerCompression;
  platform?: FixturePlatform;
  /** Leave `mediaType` out of the manifest (OCI allows it). */
  omitMediaType?: boolean;
  annotations?: Record<string, string>;
  /** Put the fixture in the layout's index.json; default true. */
  tagged?: boolean;
}

export interface IndexOptions {
  ref?: string;
  layerSizes?: readonly number[];
  baseLayers?: readonly FixtureDescriptor[];
  /** Default linux/amd64 and linux/arm64. */
  platforms?: readonly FixturePlatform[];
  /** Add a buildx-style attestation manifest per platform; default
   * true for OCI. */
  attestations?: boolean;
  tagged?: boolean;
}

export interface OciLayoutOptions {
  /** Default HARNESS_SEED, else random; logged either way. */
  seed?: string;
  /** Print the seed; default true. */
  logSeed?: boolean;
}

const DEFAULT_PLATFORMS: FixturePlatform[] = [
  { architecture: 'amd64', os: 'linux' },
  { architecture: 'arm64', os: 'linux', variant: 'v8' },
];

/**
 * An OCI image layout in a temp folder. Builders write blobs as they go;
 * index.json is rewritten after each tagged fixture, so the layout is
 * always usable.
 */
export class OciLayout {
  readonly dir: string;
  readonly seed: string;
  #counter = 0;
  #refs: FixtureDescriptor[] = [];
  #unregister: () => void;

  private constructor(dir: string, seed: string) {
    this.dir = dir;
    this.seed = seed;
    this.#unregister = onStopAll(() => this.remove());
  }

  static async create(options: OciLayoutOptions = {}): Promise<OciLayout> {
    const seed = options.seed ?? process.env.HARNESS_SEED ??
      randomBytes(8).toString('hex');
    if (options.logSeed ?? true) {
      console.info(`[harness] OCI layout seed ${seed} ` +
        '(HARNESS_SEED=<seed> writes the same blobs again)');
    }
    const dir = await makeTempDir('layout');
    await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(dir, 'oci-layout'),
      JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const layout = new OciLayout(dir, seed);
    await layout.#writeIndex();
    return layout;
  }

  async remove(): Promise<void> {
    this.#unregister();
    await removeDir(this.dir);
  }

  /** The path of a blob's file in the layout. */
  blobPath(digest: string): string {
    return join(this.dir, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
  }

  /** Writes exact bytes as a blob. */
  async addBlob(
    bytes: Uint8Array | string, mediaType: string,
  ): Promise<FixtureDescriptor> {
    const data = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
    const digest = sha256Digest(data);
    await writeFile(this.blobPath(digest), data);
    return { mediaType, digest, size: data.byteLength };
  }

  /** Writes a manifest or index document exactly as given (JSON text or
   * an object serialised with JSON.stringify). */
  addManifest(
    document: object | string, mediaType: string,
  ): Promise<FixtureDescriptor> {
    const text = typeof document === 'string'
      ? document : JSON.stringify(document);
    return this.addBlob(text, mediaType);
  }

  /**
   * Writes a layer: a tar holding one file of `payloadSize` seeded random
   * bytes, gzipped unless `compression` is 'none'. Streams, so any size
   * works. Returns the descriptor and the layer's diff ID (sha256 of the
   * tar).
   */
  async addRandomLayer(
    payloadSize: number,
    mediaType: string = OciMediaType.layerGzip,
    compression: LayerCompression = 'gzip',
  ): Promise<FixtureDescriptor & { diffId: string }> {
    const index = this.#counter++;
    const random = seededStream(`${this.seed}:layer:${index}`);
    const partial = join(this.dir, `partial-${index}`);
    const out = createWriteStream(partial);
    const blobHash = createHash('sha256');
    const tarHash = createHash('sha256');
    let size = 0;

    // random bytes do not compress: level 0 makes a valid gzip stream at
    // a fraction of the cost
    const compressed = compression === 'gzip';
    const sink: Writable = compressed ? createGzip({ level: 0 }) : out;
    const count = (chunk: Buffer) => {
      blobHash.update(chunk);
      size += chunk.length;
    };
    if (compressed) {
      sink.on('data', count);
      (sink as Gzip).pipe(out);
    }

    const tarWrite = async (chunk: Buffer) => {
      tarHash.update(chunk);
      if (!compressed) count(chunk);
      if (!sink.write(chunk)) {
        await new Promise((resolve) => sink.once('drain', resolve));
      }
    };
    await tarWrite(tarHeader(`layer-${index}.bin`, payloadSize));
    for (let left = payloadSize; left > 0;) {
      const n = Math.min(left, 1 << 20);
      await tarWrite(random(n));
      left -= n;
    }
    const padding = (512 - (payloadSize % 512)) % 512;
    await tarWrite(Buffer.alloc(padding + 1024));
    sink.end();
    await finished(out);

    const digest = `sha256:${blobHash.digest('hex')}`;
    await rename(partial, this.blobPath(digest));
    return {
      mediaType,
      digest,
      size,
      diffId: `sha256:${tarHash.digest('hex')}`,
    };
  }

  /** Raw seeded random bytes as a blob (not a valid layer archive). */
  addRandomBlob(size: number, mediaType: string): Promise<FixtureDescriptor> {
    const bytes = seededStream(`${this.seed}:blob:${this.#counter++}`)(size);
    return this.addBlob(bytes, mediaType);
  }

  /** Adds `descriptor` to index.json under `ref`. */
  async tag(ref: string, descriptor: FixtureDescriptor): Promise<void> {
    this.#refs = this.#refs.filter(
      (d) => d.annotations?.['org.opencontainers.image.ref.name'] !== ref);
    this.#refs.push({
      mediaType: descriptor.mediaType,
      digest: descriptor.digest,
      size: descriptor.size,
      annotations: { 'org.opencontainers.image.ref.name': ref },
    });
    await this.#writeIndex();
  }

  /** A single-platform image with random layers. */
  async image(options: ImageOptions = {}): Promise<Fixture> {
    const docker = options.format === 'docker';
    const platform = options.platform ?? DEFAULT_PLATFORMS[0]!;
    const base = options.baseLayers ?? [];
    const compression = docker ? 'gzip' : options.compression ?? 'gzip';
    const layerMediaType = docker ? DockerMediaType.layerGzip
      : compression === 'gzip' ? OciMediaType.layerGzip
        : OciMediaType.layerTar;

    const fresh = [];
    for (const size of options.layerSizes ?? [2048, 4096]) {
      fresh.push(await this.addRandomLayer(size, layerMediaType,
        compression));
    }
    const layers: FixtureDescriptor[] = [
      ...base.map((l) => ({ mediaType: l.mediaType, digest: l.digest,
        size: l.size })),
      ...fresh.map(({ diffId: _, ...layer }) => layer),
    ];

    // base layers' diff IDs are unknown here; their digests stand in,
    // which no registry checks
    const config = await this.addBlob(JSON.stringify({
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      created: '2024-01-01T00:00:00Z',
      config: { Labels: { 'harness.seed': this.seed,
        'harness.image': String(this.#counter++) } },
      rootfs: {
        type: 'layers',
        diff_ids: [...base.map((l) => l.digest),
          ...fresh.map((l) => l.diffId)],
      },
      history: layers.map(() => ({ created_by: 'ghcr-backup harness' })),
    }), docker ? DockerMediaType.config : OciMediaType.config);

    const mediaType = docker
      ? DockerMediaType.manifest : OciMediaType.manifest;
    const document: Record<string, unknown> = { schemaVersion: 2 };
    if (!options.omitMediaType) document.mediaType = mediaType;
    document.config = config;
    document.layers = layers;
    if (options.annotations) document.annotations = options.annotations;

    const manifest = await this.addManifest(document, mediaType);
    const descriptor = { ...manifest, platform };
    return this.#finish(options, descriptor, [descriptor],
      [config, ...layers], { config, layers });
  }

  /**
   * A multi-platform OCI index (linux/amd64 and linux/arm64 by default)
   * with, per platform, a buildx-style attestation manifest: platform
   * unknown/unknown, annotations vnd.docker.reference.type =
   * attestation-manifest and vnd.docker.reference.digest = the image.
   */
  async multiPlatformIndex(options: IndexOptions = {}): Promise<Fixture> {
    const platforms = options.platforms ?? DEFAULT_PLATFORMS;
    const children: Fixture[] = [];
    for (const platform of platforms) {
      children.push(await this.image({
        platform,
        layerSizes: options.layerSizes,
        baseLayers: options.baseLayers,
        tagged: false,
      }));
    }

    const entries: FixtureDescriptor[] = children.map((c) => c.descriptor);
    const attestations: Fixture[] = [];
    if (options.attestations ?? true) {
      for (const child of children) {
        const attestation = await this.#attestation(child);
        attestations.push(attestation);
        entries.push(attestation.descriptor);
      }
    }

    const index = await this.addManifest({
      schemaVersion: 2,
      mediaType: OciMediaType.index,
      manifests: entries,
    }, OciMediaType.index);
    return this.#finish(options, index,
      [index, ...[...children, ...attestations].flatMap((c) => c.manifests)],
      [...children, ...attestations].flatMap((c) => c.blobs));
  }

  /** A Docker manifest list whose children are Docker schema 2. */
  async dockerManifestList(
    options: Omit<IndexOptions, 'attestations'> = {},
  ): Promise<Fixture> {
    const platforms = options.platforms ?? DEFAULT_PLATFORMS;
    const children: Fixture[] = [];
    for (const platform of platforms) {
      children.push(await this.image({
        platform, format: 'docker', layerSizes: options.layerSizes,
        baseLayers: options.baseLayers, tagged: false,
      }));
    }

    const list = await this.addManifest({
      schemaVersion: 2,
      mediaType: DockerMediaType.manifestList,
      manifests: children.map((c) => c.descriptor),
    }, DockerMediaType.manifestList);
    return this.#finish(options, list,
      [list, ...children.flatMap((c) => c.manifests)],
      children.flatMap((c) => c.blobs));
  }

  /** An OCI image manifest without the `mediaType` field. */
  manifestWithoutMediaType(options: ImageOptions = {}): Promise<Fixture> {
    return this.image({ ...options, format: 'oci', omitMediaType: true });
  }

  /**
   * An artifact manifest (`artifactType`, empty config, one blob) whose
   * `subject` is `subject`'s top manifest. The subject is not copied into
   * this fixture's tree: push it first.
   */
  async artifact(subject: Fixture, options: {
    ref?: string;
    artifactType?: string;
    tagged?: boolean;
  } = {}): Promise<Fixture> {
    const artifactType = options.artifactType ??
      'application/vnd.example.sbom.v1+json';
    const config = await this.addBlob('{}', OciMediaType.empty);
    const payload = await this.addBlob(JSON.stringify({
      sbom: 'harness', seed: this.seed, n: this.#counter++,
    }), 'application/vnd.example.sbom.v1+json');

    const manifest = await this.addManifest({
      schemaVersion: 2,
      mediaType: OciMediaType.manifest,
      artifactType,
      config,
      layers: [payload],
      subject: {
        mediaType: subject.mediaType,
        digest: subject.digest,
        size: subject.size,
      },
      annotations: {
        'org.opencontainers.image.created': '2024-01-01T00:00:00Z',
      },
    }, OciMediaType.manifest);
    return this.#finish(options, { ...manifest, artifactType },
      [{ ...manifest, artifactType }], [config, payload],
      { config, layers: [payload] });
  }

  /**
   * Two images over the same base layers, tagged `refs[0]` and `refs[1]`.
   * Each has one layer of its own.
   */
  async imagesSharingBase(options: {
    refs?: [string, string];
    baseLayerSizes?: readonly number[];
  } = {}): Promise<{ base: FixtureDescriptor[]; images: [Fixture, Fixture] }> {
    const base: FixtureDescriptor[] = [];
    for (const size of options.baseLayerSizes ?? [8192, 4096]) {
      const { diffId: _, ...layer } = await this.addRandomLayer(size);
      base.push(layer);
    }
    const [first, second] = options.refs ?? [undefined, undefined];
    const a = await this.image({ ref: first, baseLayers: base,
      layerSizes: [1024] });
    const b = await this.image({ ref: second, baseLayers: base,
      layerSizes: [1536] });
    return { base, images: [a, b] };
  }

  /** An OCI index whose children are a multi-platform index and an
   * image. */
  async nestedIndex(options: { ref?: string; tagged?: boolean } = {}):
  Promise<Fixture> {
    const inner = await this.multiPlatformIndex({ tagged: false });
    const single = await this.image({ tagged: false,
      platform: { architecture: 's390x', os: 'linux' } });

    const outer = await this.addManifest({
      schemaVersion: 2,
      mediaType: OciMediaType.index,
      manifests: [inner.descriptor, single.descriptor],
    }, OciMediaType.index);
    return this.#finish(options, outer,
      [outer, ...inner.manifests, ...single.manifests],
      [...inner.blobs, ...single.blobs]);
  }

  /**
   * One image with one layer of `payloadSize` random bytes, written as it
   * is generated. Plain tar by default (the blob is then the payload plus
   * 2.5 KiB of tar framing); gzip costs time and saves nothing here.
   */
  largeImage(payloadSize: number, options: {
    ref?: string;
    compression?: LayerCompression;
  } = {}): Promise<Fixture> {
    return this.image({
      ref: options.ref,
      layerSizes: [payloadSize],
      compression: options.compression ?? 'none',
    });
  }

  async #attestation(subject: Fixture): Promise<Fixture> {
    const statement = await this.addBlob(JSON.stringify({
      _type: 'https://in-toto.io/Statement/v0.1',
      predicateType: 'https://slsa.dev/provenance/v0.2',
      subject: [{ name: 'harness', digest: {
        sha256: subject.digest.slice(7) } }],
      predicate: { seed: this.seed, n: this.#counter++ },
    }), 'application/vnd.in-toto+json');
    const layer = { ...statement, annotations: {
      'in-toto.io/predicate-type': 'https://slsa.dev/provenance/v0.2',
    } };
    const config = await this.addBlob(JSON.stringify({
      architecture: 'unknown', os: 'unknown', config: {},
      rootfs: { type: 'layers', diff_ids: [statement.digest] },
    }), OciMediaType.config);

    const manifest = await this.addManifest({
      schemaVersion: 2,
      mediaType: OciMediaType.manifest,
      config,
      layers: [layer],
    }, OciMediaType.manifest);
    const descriptor: FixtureDescriptor = {
      ...manifest,
      platform: { architecture: 'unknown', os: 'unknown' },
      annotations: {
        'vnd.docker.reference.digest': subject.digest,
        'vnd.docker.reference.type': 'attestation-manifest',
      },
    };
    return this.#finish({ tagged: false }, descriptor, [descriptor],
      [config, statement], { config, layers: [layer] });
  }

  async #finish(
    options: { ref?: string; tagged?: boolean },
    descriptor: FixtureDescriptor,
    manifests: FixtureDescriptor[],
    blobs: FixtureDescriptor[],
    parts: { config?: FixtureDescriptor; layers?: FixtureDescriptor[] } = {},
  ): Promise<Fixture> {
    const ref = options.ref ?? `fixture-${this.#counter++}`;
    if (options.tagged ?? true) await this.tag(ref, descriptor);

    const unique = new Map<string, FixtureDescriptor>();
    for (const blob of blobs) {
      if (!unique.has(blob.digest)) unique.set(blob.digest, plain(blob));
    }
    return {
      layoutDir: this.dir,
      ref,
      digest: descriptor.digest,
      mediaType: descriptor.mediaType,
      size: descriptor.size,
      descriptor,
      manifests,
      blobs: [...unique.values()],
      ...parts,
    };
  }

  async #writeIndex(): Promise<void> {
    await writeFile(join(this.dir, 'index.json'), JSON.stringify({
      schemaVersion: 2,
      mediaType: OciMediaType.index,
      manifests: this.#refs,
    }));
  }
}

/** A new layout in a temp folder; removed by `remove()` or `stopAll()`. */
export function createLayout(
  options: OciLayoutOptions = {},
): Promise<OciLayout> {
  return OciLayout.create(options);
}

export function sha256Digest(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function plain(d: FixtureDescriptor): FixtureDescriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

/**
 * A deterministic byte source: AES-256-CTR over zeros, keyed by the
 * sha256 of `label`. Fast enough for hundreds of MiB.
 */
export function seededStream(label: string): (n: number) => Buffer {
  const key = createHash('sha256').update(label).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return (n) => cipher.update(Buffer.alloc(n));
}

/** A ustar header for one regular file. */
function tarHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(512);
  const put = (text: string, offset: number, length: number) => {
    header.write(text.slice(0, length), offset, 'ascii');
  };
  const octal = (value: number, length: number) =>
    value.toString(8).padStart(length - 1, '0');

  put(name, 0, 100);
  put(octal(0o644, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(size, 12), 124, 12);
  put(octal(0, 12), 136, 12);
  put('        ', 148, 8);
  put('0', 156, 1);
  put('ustar', 257, 6);
  put('00', 263, 2);

  let sum = 0;
  for (const byte of header) sum += byte;
  put(`${octal(sum, 7)}\0`, 148, 8);
  return header;
}
