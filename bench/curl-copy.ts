// The raw limit of a copy: each blob as a curl GET piped into a curl
// monolithic PUT, with nothing in between (no hashing, no retries, no
// checks). Small requests (manifest, upload session) go through fetch:
// they take milliseconds either way.

import { spawn } from 'node:child_process';

export interface CurlSide {
  /** `http://127.0.0.1:PORT` */
  url: string;
  repository: string;
  username?: string;
  password?: string;
}

export interface CurlCopyResult {
  ms: number;
  blobs: number;
  bytes: number;
}

const ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

interface Descriptor { digest: string; size: number; mediaType: string }

/** Copies one single-platform image by tag, timed from start to end. */
export async function curlCopy(
  source: CurlSide, target: CurlSide, tag: string,
): Promise<CurlCopyResult> {
  const started = performance.now();

  const manifestResponse = await fetch(
    `${source.url}/v2/${source.repository}/manifests/${tag}`,
    { headers: { accept: ACCEPT, ...basic(source) } });
  await expectStatus(manifestResponse, 200, 'GET manifest');
  const mediaType = manifestResponse.headers.get('content-type') ?? '';
  const manifestBytes = new Uint8Array(await manifestResponse.arrayBuffer());
  const manifest = JSON.parse(new TextDecoder().decode(manifestBytes)) as {
    config: Descriptor; layers: Descriptor[];
  };

  let bytes = 0;
  for (const blob of [manifest.config, ...manifest.layers]) {
    await pipeBlob(source, target, blob);
    bytes += blob.size;
  }

  const put = await fetch(
    `${target.url}/v2/${target.repository}/manifests/${tag}`, {
      method: 'PUT',
      headers: { 'content-type': mediaType, ...basic(target) },
      body: manifestBytes,
    });
  await expectStatus(put, 201, 'PUT manifest');

  return {
    ms: performance.now() - started,
    blobs: manifest.layers.length + 1,
    bytes,
  };
}

async function pipeBlob(
  source: CurlSide, target: CurlSide, blob: Descriptor,
): Promise<void> {
  const post = await fetch(
    `${target.url}/v2/${target.repository}/blobs/uploads/`,
    { method: 'POST', headers: basic(target) });
  await expectStatus(post, 202, 'POST upload');
  const location = new URL(post.headers.get('location') ?? '', target.url);
  location.searchParams.set('digest', blob.digest);

  // Content-Length as our engine sends it, rather than chunked encoding
  const get = [...curlAuth(source), '-sSf',
    `${source.url}/v2/${source.repository}/blobs/${blob.digest}`];
  const put = [...curlAuth(target), '-sSf', '-o', '/dev/null',
    '-X', 'PUT', '-T', '-',
    '-H', 'Content-Type: application/octet-stream',
    '-H', `Content-Length: ${blob.size}`,
    location.toString()];
  await pipeline(get, put);
}

/** Runs `curl GET | curl PUT` and waits for both. */
function pipeline(getArgs: string[], putArgs: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const reader = spawn('curl', getArgs,
      { stdio: ['ignore', 'pipe', 'pipe'] });
    const writer = spawn('curl', putArgs,
      { stdio: [reader.stdout, 'ignore', 'pipe'] });

    // the writer has its own copy of the pipe; ours would keep the
    // reader from ever closing (and could steal bytes)
    reader.stdout.destroy();
    let errors = '';
    reader.stderr.on('data', (chunk: Buffer) => { errors += chunk; });
    writer.stderr.on('data', (chunk: Buffer) => { errors += chunk; });

    let pending = 2;
    let failed = false;
    const done = (name: string) => (code: number | null) => {
      if (code !== 0 && !failed) {
        failed = true;
        reject(new Error(`curl ${name} exited with ${code}: ${errors}`));
      }
      if (--pending === 0 && !failed) resolve();
    };
    reader.once('close', done('GET'));
    writer.once('close', done('PUT'));
    reader.once('error', reject);
    writer.once('error', reject);
  });
}

function basic(side: CurlSide): Record<string, string> {
  if (side.username === undefined) return {};
  const token = Buffer.from(`${side.username}:${side.password ?? ''}`)
    .toString('base64');
  return { authorization: `Basic ${token}` };
}

// a password on a command line is visible to ps: these are throwaway
// credentials of the benchmark's own registries
function curlAuth(side: CurlSide): string[] {
  return side.username === undefined
    ? [] : ['-u', `${side.username}:${side.password ?? ''}`];
}

async function expectStatus(
  response: Response, status: number, what: string,
): Promise<void> {
  if (response.status === status) return;
  const body = await response.text().catch(() => '');
  throw new Error(`${what} answered ${response.status} (${response.url}): ` +
    body.slice(0, 300));
}
