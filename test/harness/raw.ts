// A minimal registry client of the harness's own, for what skopeo cannot
// do (push a Docker manifest list or a nested index from an OCI layout)
// and for tests that want to look at a registry directly. Deliberately
// independent of the project's registry client, so a test never checks
// that code with itself.

import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';

import {
  sha256Digest, type Fixture, type FixtureDescriptor,
} from './oci-layout.js';
import type { RegistryLike } from './skopeo.js';
import type { UserCredentials } from './token-issuer.js';

export interface RawBlob {
  digest: string;
  /** The blob's file (streamed) or bytes. */
  path?: string;
  bytes?: Uint8Array;
}

export interface RawManifestUpload {
  /** Tag or digest to PUT under. */
  reference: string;
  mediaType: string;
  bytes: Uint8Array;
}

export interface RegistryFetchInit {
  method?: string;
  headers?: Record<string, string>;
  body?: Uint8Array | string | Readable;
  /** Which repository actions to ask a token for; default pull,push. */
  actions?: string;
  /** Do not follow redirects; default true (return the 3xx). */
  manualRedirect?: boolean;
}

/**
 * One request to a registry (`path` starts with `/v2/`), with Basic
 * credentials, or a Bearer token fetched from the realm the 401 challenge
 * names, for the repository in the path.
 */
export async function registryFetch(
  registry: RegistryLike,
  path: string,
  init: RegistryFetchInit = {},
  credentials?: UserCredentials | null,
): Promise<Response> {
  const creds = credentials === null ? undefined
    : credentials ?? (registry.auth === 'none' ? undefined
      : registry.credentials);
  const url = path.startsWith('http') ? path
    : `http://${registry.host}${path}`;
  const basic = creds ? 'Basic ' + Buffer.from(
    `${creds.username}:${creds.password}`).toString('base64') : undefined;

  const send = (authorization?: string) => {
    const headers: Record<string, string> = { ...init.headers };
    if (authorization) headers.authorization = authorization;
    const method = init.method ?? 'GET';

    // fetch (undici, Node 22) holds a streamed request body in memory as
    // it sends it; node:http's pipe keeps to a few chunks
    if (init.body instanceof Readable) {
      return sendStreamed(url, method, headers, init.body);
    }
    return fetch(url, {
      method, headers, body: init.body, redirect: 'manual',
    });
  };

  // a streamed body cannot be sent twice: find the scheme first
  const replayable = !(init.body instanceof Readable);
  let response = replayable ? await send(basic)
    : await fetch(`http://${registry.host}/v2/`, { redirect: 'manual' });
  if (response.status !== 401) {
    return replayable ? response : send(basic);
  }

  const challenge = response.headers.get('www-authenticate') ?? '';
  await response.body?.cancel();
  if (!/^bearer /i.test(challenge)) return send(basic);

  const param = (name: string) =>
    new RegExp(`${name}="([^"]*)"`, 'i').exec(challenge)?.[1];
  const realm = new URL(param('realm') ?? '');
  const service = param('service');
  if (service) realm.searchParams.set('service', service);
  const repository = /^\/v2\/(.+?)\/(manifests|blobs|tags|referrers)\//
    .exec(new URL(url).pathname)?.[1];
  if (repository) {
    realm.searchParams.append('scope',
      `repository:${repository}:${init.actions ?? 'pull,push'}`);
  }
  const tokenResponse = await fetch(realm,
    { headers: basic ? { authorization: basic } : {} });
  if (!tokenResponse.ok) {
    throw new Error(`token request to ${realm.origin} answered ` +
      `${tokenResponse.status}`);
  }
  const { token } = await tokenResponse.json() as { token: string };
  response = await send(`Bearer ${token}`);
  return response;
}

function sendStreamed(
  url: string, method: string, headers: Record<string, string>,
  body: Readable,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { method, headers, agent: false },
      (answer) => {
        const out = new Headers();
        for (const [name, value] of Object.entries(answer.headers)) {
          if (value !== undefined) out.set(name, String(value));
        }
        const chunks: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => chunks.push(chunk));
        answer.on('end', () => resolve(new Response(
          answer.statusCode === 204 ? null : Buffer.concat(chunks),
          { status: answer.statusCode ?? 0, headers: out })));
        answer.on('error', reject);
      });
    request.on('error', reject);
    body.on('error', (error) => request.destroy(error));
    body.pipe(request);
  });
}

async function expectStatus(
  response: Response, expected: number[], what: string,
): Promise<Response> {
  if (expected.includes(response.status)) return response;
  const text = await response.text();
  throw new Error(`${what} answered ${response.status}: ${text}`);
}

/**
 * Uploads blobs then manifests, in the order given, as exact bytes: a
 * monolithic POST + PUT per missing blob, then a PUT per manifest.
 */
export async function pushRaw(
  registry: RegistryLike,
  repository: string,
  blobs: readonly RawBlob[],
  manifests: readonly RawManifestUpload[],
  credentials?: UserCredentials | null,
): Promise<void> {
  const base = `/v2/${repository}`;
  for (const blob of blobs) {
    const head = await registryFetch(registry,
      `${base}/blobs/${blob.digest}`, { method: 'HEAD' }, credentials);
    if (head.status === 200) continue;

    const start = await expectStatus(await registryFetch(registry,
      `${base}/blobs/uploads/`, { method: 'POST' }, credentials),
    [202], `upload start for ${blob.digest} in ${repository}`);
    const location = new URL(start.headers.get('location') ?? '',
      `http://${registry.host}`);
    location.searchParams.set('digest', blob.digest);

    const size = blob.bytes?.byteLength ?? (await stat(blob.path!)).size;
    const body = blob.bytes ?? createReadStream(blob.path!);
    await expectStatus(await registryFetch(registry, location.href, {
      method: 'PUT',
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(size),
      },
      body,
    }, credentials), [201], `upload of ${blob.digest} to ${repository}`);
  }

  for (const manifest of manifests) {
    await expectStatus(await registryFetch(registry,
      `${base}/manifests/${manifest.reference}`, {
        method: 'PUT',
        headers: { 'content-type': manifest.mediaType },
        body: manifest.bytes,
      }, credentials), [201],
    `manifest PUT ${repository}:${manifest.reference}`);
  }
}

/**
 * Pushes a fixture's whole tree from its layout with `pushRaw`: every
 * blob, then every manifest children first (by digest), then the top one
 * under `tag` as well.
 */
export async function pushFixtureRaw(
  fixture: Fixture,
  registry: RegistryLike,
  repository: string,
  tag: string,
  credentials?: UserCredentials | null,
): Promise<void> {
  const blobPath = (d: FixtureDescriptor) => join(fixture.layoutDir,
    'blobs', 'sha256', d.digest.replace(/^sha256:/, ''));

  const manifests: RawManifestUpload[] = [];
  const seen = new Set<string>();

  // pre-order reversed puts every child before its parent
  for (const descriptor of [...fixture.manifests].reverse()) {
    if (seen.has(descriptor.digest)) continue;
    seen.add(descriptor.digest);
    manifests.push({
      reference: descriptor.digest,
      mediaType: descriptor.mediaType,
      bytes: await readFile(blobPath(descriptor)),
    });
  }
  manifests.push({ ...manifests[manifests.length - 1]!, reference: tag });

  await pushRaw(registry, repository,
    fixture.blobs.map((b) => ({ digest: b.digest, path: blobPath(b) })),
    manifests, credentials);
}

/**
 * What of a fixture's tree a registry's repository lacks: every manifest
 * is fetched by digest and hashed, every blob checked by HEAD and size.
 * Returns a line per problem; [] when the whole tree is there, intact.
 */
export async function missingFromRegistry(
  registry: RegistryLike,
  repository: string,
  fixture: Pick<Fixture, 'manifests' | 'blobs'>,
  credentials?: UserCredentials | null,
): Promise<string[]> {
  const problems: string[] = [];
  const accept = [...new Set(fixture.manifests.map((m) => m.mediaType))]
    .join(', ');

  for (const manifest of fixture.manifests) {
    const response = await registryFetch(registry,
      `/v2/${repository}/manifests/${manifest.digest}`,
      { headers: { accept }, actions: 'pull' }, credentials);
    if (response.status !== 200) {
      await response.body?.cancel();
      problems.push(`manifest ${manifest.digest}: ${response.status}`);
      continue;
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    const digest = sha256Digest(bytes);
    if (digest !== manifest.digest) {
      problems.push(`manifest ${manifest.digest}: bytes hash to ${digest}`);
    }
  }

  for (const blob of fixture.blobs) {
    const response = await registryFetch(registry,
      `/v2/${repository}/blobs/${blob.digest}`,
      { method: 'HEAD', actions: 'pull' }, credentials);
    const size = Number(response.headers.get('content-length'));
    if (response.status !== 200) {
      problems.push(`blob ${blob.digest}: ${response.status}`);
    } else if (size !== blob.size) {
      problems.push(`blob ${blob.digest}: size ${size}, not ${blob.size}`);
    }
  }
  return problems;
}
