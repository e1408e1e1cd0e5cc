// What the copy tests share: a GHCR-like source (token auth) and an
// htpasswd target, clients for them, the CLI as a subprocess, and the
// independent checks of a copied image with skopeo.

import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';

import { RegistryClient } from '../functions/lib/registry/client.js';
import {
  staticCredentials,
} from '../functions/lib/registry/credentials.js';
import {
  DockerMediaType, copyToLayout, inspectRaw, makeTempDir, onStopAll,
  registryFetch, removeDir, startRegistry, type Fixture,
  type FixtureDescriptor, type OciLayout, type RegistryLike,
  type TestRegistry, type UserCredentials,
} from './harness/index.js';

export interface Pair {
  source: TestRegistry;
  target: TestRegistry;
}

/** A GHCR-like source with token auth and a target with htpasswd. */
export async function startPair(): Promise<Pair> {
  const [source, target] = await Promise.all([
    startRegistry({ auth: 'token', name: 'source' }),
    startRegistry({ auth: 'htpasswd', name: 'target' }),
  ]);
  return { source, target };
}

/** Our client for a test registry (or a proxy in front of one). */
export function clientFor(registry: RegistryLike,
  credentials = registry.credentials): RegistryClient {
  return new RegistryClient({
    endpoint: { host: registry.host, scheme: 'http' },
    credentials: staticCredentials(
      credentials ? { [registry.host]: credentials } : {}),
    retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 50 },
  });
}

/** A Docker config folder with an `auths` entry per registry. */
export async function dockerConfig(
  entries: readonly { host: string; credentials: UserCredentials }[],
): Promise<string> {
  const dir = await tempDir('docker-config');
  const auths: Record<string, { auth: string }> = {};
  for (const { host, credentials } of entries) {
    auths[host] = { auth: Buffer.from(
      `${credentials.username}:${credentials.password}`).toString('base64') };
  }
  await writeFile(join(dir, 'config.json'), JSON.stringify({ auths }));
  return dir;
}

/**
 * The environment the CLI runs with against a pair: a Docker config naming
 * both registries' credentials and a state home of its own.
 */
export async function cliEnv(pair: Pair): Promise<NodeJS.ProcessEnv> {
  return {
    DOCKER_CONFIG: await dockerConfig([
      { host: pair.source.host, credentials: pair.source.credentials },
      { host: pair.target.host, credentials: pair.target.credentials },
    ]),
    XDG_STATE_HOME: await tempDir('state-home'),
  };
}

/** `http://HOST/REPO:TAG` (or `@DIGEST`) of a test registry. */
export function imageRef(registry: { host: string }, reference: string):
  string {
  return `http://${registry.host}/${reference}`;
}

/** A temp folder removed when the test file's `stopAll` runs. */
export async function tempDir(label: string): Promise<string> {
  const dir = await makeTempDir(label);
  onStopAll(() => removeDir(dir));
  await mkdir(dir, { recursive: true });
  return dir;
}

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `npm start -- ARGS` the way npm does (tsx on Node 22), with a
 * clean environment: only PATH, HOME and what `env` adds.
 */
export function runCli(args: readonly string[],
  env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const root = join(import.meta.dirname, '..');
  const bin = join(root, 'node_modules', '.bin');

  return new Promise((resolve, reject) => {
    const child = spawn(join(bin, 'tsx'),
      [join(root, 'functions', 'cli', 'main.ts'), ...args], {
        cwd: root,
        env: { PATH: `${bin}:${process.env.PATH}`, HOME: env.HOME ?? root,
          ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/**
 * Checks a copy independently of our client: `skopeo inspect --raw` gives
 * the same bytes on both sides, and `skopeo copy` reads the whole image
 * from the target into a fresh OCI layout (unless `skopeoCopy` is false:
 * skopeo 1.9 cannot copy an index nested in an index).
 */
export async function expectSameImage(
  source: RegistryLike, sourceRef: string,
  target: RegistryLike, targetRef: string, digest: string,
  options: { skopeoCopy?: boolean } = {},
): Promise<void> {
  const [left, right] = await Promise.all([
    inspectRaw(source, sourceRef),
    inspectRaw(target, targetRef),
  ]);
  expect(left.digest).toBe(digest);
  expect(right.digest).toBe(digest);
  expect(right.bytes.equals(left.bytes)).toBe(true);
  if (options.skopeoCopy === false) return;

  const copied = await copyToLayout(target, targetRef);
  await copied.remove();
}

/** The status of a manifest HEAD on a registry, by tag or digest. */
export async function manifestStatus(registry: RegistryLike,
  repository: string, reference: string): Promise<number> {
  const response = await registryFetch(registry,
    `/v2/${repository}/manifests/${reference}`, {
      method: 'HEAD', actions: 'pull',
      headers: { accept: [
        'application/vnd.oci.image.index.v1+json',
        'application/vnd.oci.image.manifest.v1+json',
        'application/vnd.docker.distribution.manifest.list.v2+json',
        'application/vnd.docker.distribution.manifest.v2+json',
      ].join(', ') },
    });
  await response.body?.cancel();
  return response.status;
}

/**
 * Flips a byte in the middle of a blob in a registry's storage: the
 * registry keeps serving it under its digest, as a broken store would.
 */
export async function corruptBlob(registry: TestRegistry, digest: string):
  Promise<void> {
  const hex = digest.slice('sha256:'.length);
  const path = join(registry.storageDir, 'docker', 'registry', 'v2',
    'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
  const bytes = await readFile(path);
  const middle = bytes.length >> 1;
  bytes[middle] = bytes[middle]! ^ 0xff;
  await writeFile(path, bytes);
}

const FOREIGN_LAYER =
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip';

/**
 * A Docker image whose first layer is foreign (a Windows base layer, say):
 * the manifest names it with external `urls`, and the registry holds only
 * the config and the other layer. Push it with `pushFixtureRaw`.
 */
export async function foreignLayerImage(into: OciLayout):
  Promise<{ fixture: Fixture; foreign: FixtureDescriptor }> {
  const foreign = {
    ...await into.addRandomBlob(3000, FOREIGN_LAYER),
    urls: ['https://foreign.example.invalid/base-layer.tar.gz'],
  };
  const own = await into.addRandomLayer(2048, DockerMediaType.layerGzip);
  const layer = { mediaType: own.mediaType, digest: own.digest,
    size: own.size };
  const config = await into.addBlob(JSON.stringify({
    architecture: 'amd64', os: 'windows',
    rootfs: { type: 'layers', diff_ids: [foreign.digest, own.diffId] },
  }), DockerMediaType.config);
  const manifest = await into.addManifest({
    schemaVersion: 2,
    mediaType: DockerMediaType.manifest,
    config,
    layers: [foreign, layer],
  }, DockerMediaType.manifest);

  const fixture: Fixture = {
    layoutDir: into.dir, ref: 'foreign', digest: manifest.digest,
    mediaType: manifest.mediaType, size: manifest.size,
    descriptor: manifest, manifests: [manifest], blobs: [config, layer],
  };
  return { fixture, foreign };
}
