// `copy` on images and situations at the edges: exact bytes no fixture
// builder writes (an empty-config artifact, a 0-byte layer, a layer listed
// twice), a --state that cannot be used, and a terminal without a size.

import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { main } from '../functions/cli/copy.js';
import { ProgressLine } from '../functions/cli/output.js';
import {
  inspectRaw, pushRaw, requireBinaries, stopAll, type RawBlob,
} from './harness/index.js';
import {
  cliEnv, imageRef as ref, startPair, tempDir, type Pair,
} from './copy-setup.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const EMPTY_CONFIG = 'application/vnd.oci.empty.v1+json';

let pair: Pair;
let env: NodeJS.ProcessEnv;
let counter = 0;

beforeAll(async () => {
  requireBinaries();
  pair = await startPair();
  env = await cliEnv(pair);
});

afterAll(stopAll);

function repository(label: string): string {
  return `edge/${label}-${++counter}`;
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** A manifest's exact bytes, its digest, and its blobs. */
interface RawImage {
  bytes: Buffer;
  digest: string;
  blobs: RawBlob[];
}

/** An OCI manifest over `layers`, written with unusual spacing. */
function rawImage(layers: Buffer[], extra: object = {}): RawImage {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64',
    os: 'linux', nonce: randomBytes(8).toString('hex') }));
  const document = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: sha256(config), size: config.length },
    layers: layers.map((layer) => ({
      mediaType: 'application/vnd.oci.image.layer.v1.tar',
      digest: sha256(layer), size: layer.length })),
    ...extra,
  };
  const bytes = Buffer.from(JSON.stringify(document, null, 3));
  const blobs = new Map([config, ...layers].map((blob) =>
    [sha256(blob), { digest: sha256(blob), bytes: blob }]));
  return { bytes, digest: sha256(bytes), blobs: [...blobs.values()] };
}

async function publish(image: RawImage, repo: string, tag: string):
  Promise<void> {
  await pushRaw(pair.source, repo, image.blobs,
    [{ reference: tag, mediaType: OCI_MANIFEST, bytes: image.bytes }]);
}

/** stdout and stderr that keep what is written; not a terminal. */
function captureTerminal() {
  const capture = () => {
    const stream = Object.assign(new Writable({
      write(chunk: Buffer, _encoding, done) {
        stream.text += chunk.toString('utf8');
        done();
      },
    }), { text: '', isTTY: false });
    return stream;
  };
  return { stdout: capture(), stderr: capture() };
}

describe('npm start -- copy at the edges', () => {
  it('copies an artifact with the empty config, no layers, annotations ' +
    'and unknown fields byte for byte', async () => {
    // Prepare
    const empty = Buffer.from('{}');
    const bytes = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.example.note',
      config: { mediaType: EMPTY_CONFIG, digest: sha256(empty), size: 2,
        data: 'e30=' },
      layers: [],
      annotations: { 'org.example.note': 'kept' },
      'x-unknown': { nested: [1, 2, 3] },
    }));
    const repo = repository('artifact');
    await pushRaw(pair.source, repo, [{ digest: sha256(empty), bytes: empty }],
      [{ reference: 'v1', mediaType: OCI_MANIFEST, bytes }]);
    const terminal = captureTerminal();

    // Act
    const status = await main(['--json', ref(pair.source, `${repo}:v1`),
      ref(pair.target, repo)], terminal, env);

    // Assess
    expect(terminal.stderr.text).toBe('');
    expect(status).toBe(0);
    expect(JSON.parse(terminal.stdout.text)).toMatchObject({
      status: 'copied', digest: sha256(bytes),
      blobs: { uploaded: 1 }, bytesUploaded: 2, manifestsPushed: 1 });
    const copied = await inspectRaw(pair.target, `${repo}:v1`);
    expect(copied.digest).toBe(sha256(bytes));
  });

  it('copies a 0-byte layer and a layer listed twice, each blob once',
    async () => {
      // Prepare
      const nothing = Buffer.alloc(0);
      const layer = randomBytes(3000);
      const image = rawImage([nothing, layer, layer, nothing]);
      const repo = repository('zero');
      await publish(image, repo, 'v1');
      const terminal = captureTerminal();

      // Act
      const status = await main(['--json', ref(pair.source, `${repo}:v1`),
        ref(pair.target, repo)], terminal, env);

      // Assess
      expect(terminal.stderr.text).toBe('');
      expect(status).toBe(0);
      const result = JSON.parse(terminal.stdout.text) as {
        blobs: { uploaded: number }; bytesUploaded: number };
      expect(result.blobs.uploaded).toBe(3);
      expect(result.bytesUploaded).toBe(
        image.blobs.reduce((sum, blob) => sum + blob.bytes!.length, 0));
      const copied = await inspectRaw(pair.target, `${repo}:v1`);
      expect(copied.digest).toBe(image.digest);
    });

  it('warns once per kind on stderr when --state cannot be used, and ' +
    'still copies', async () => {
      // Prepare: a file where the state directory should be
      const state = join(await tempDir('state-file'), 'not-a-directory');
      await writeFile(state, 'x');
      const image = rawImage([randomBytes(1000), randomBytes(2000)]);
      const repo = repository('state');
      await publish(image, repo, 'v1');
      const terminal = captureTerminal();

      // Act
      const status = await main(['--json', '--state', state,
        ref(pair.source, `${repo}:v1`), ref(pair.target, repo)],
      terminal, env);

      // Assess
      expect(status).toBe(0);
      expect(JSON.parse(terminal.stdout.text)).toMatchObject({
        status: 'copied', digest: image.digest });
      const warnings = terminal.stderr.text.trimEnd().split('\n');
      expect(warnings[0]).toMatch(/^warning: digest store lookup failed/);
      expect(warnings[0]).toContain(state);
      expect(warnings.filter((line) =>
        line.includes('lookup failed'))).toHaveLength(1);
    });
});

describe('ProgressLine', () => {
  it('uses 80 columns on a terminal that reports a width of 0', () => {
    // Prepare: a pty nobody sized (script, some CI runners) says 0
    let written = '';
    const stderr = Object.assign(new Writable({
      write(chunk: Buffer, _encoding, done) {
        written += chunk.toString('utf8');
        done();
      },
    }), { isTTY: true, columns: 0 });
    const line = new ProgressLine({ stdout: stderr, stderr }, 0);
    const text = 'blobs 2/4 (0 mounted, 0 skipped)  14.0 MiB of 20.0 MiB';

    // Act
    line.update(text);

    // Assess
    expect(written).toBe(`\r\x1b[2K${text}`);
  });
});
