// skopeo, run so that nothing of this machine leaks in or out: no Docker
// config, no auth file, and no blob-info cache shared between calls (as
// root skopeo keeps one in /var/lib/containers/cache and would later mount
// blobs it remembers, muddying what a registry receives).

import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import {
  makeTempDir, onStopAll, removeDir, runCommand,
} from './process.js';
import {
  DockerMediaType, OciMediaType, type Fixture,
} from './oci-layout.js';
import { pushFixtureRaw } from './raw.js';
import { requireBinaries } from './require.js';
import type { UserCredentials } from './token-issuer.js';

/** What skopeo needs of a registry; a TestRegistry or a proxy fits. */
export interface RegistryLike {
  /** `127.0.0.1:PORT`. */
  host: string;
  /** Used when no credentials are passed and auth is not 'none'. */
  credentials?: UserCredentials;
  auth?: string;
}

export interface RawManifest {
  bytes: Buffer;
  /** sha256 of the exact bytes. */
  digest: string;
  /** The document's `mediaType` field, when it has one. */
  mediaType?: string;
}

/** Credentials to use for a registry: explicit, else the registry's own
 * unless it has no auth. `null` forces anonymous access. */
function credentialsFor(
  registry: RegistryLike, credentials?: UserCredentials | null,
): UserCredentials | undefined {
  if (credentials === null) return undefined;
  if (credentials) return credentials;
  return registry.auth === 'none' ? undefined : registry.credentials;
}

function credsFlags(
  side: 'src' | 'dest' | '', credentials?: UserCredentials,
): string[] {
  const prefix = side ? `--${side}-` : '--';
  return credentials
    ? [`${prefix}creds`, `${credentials.username}:${credentials.password}`]
    : [`${prefix}no-creds`];
}

/**
 * The environment for skopeo calls that share what skopeo keeps in `home`
 * (its blob-info cache above all: reuse `home` to keep what skopeo learnt,
 * as a rerun would). `home` must be a folder no one else uses.
 */
export async function skopeoEnv(home: string): Promise<NodeJS.ProcessEnv> {
  await mkdir(join(home, 'run'), { recursive: true });
  await mkdir(join(home, 'tmp'), { recursive: true });
  const registriesConf = join(home, 'registries.conf');
  await writeFile(registriesConf, 'unqualified-search-registries = []\n');
  const authFile = join(home, 'auth.json');
  await writeFile(authFile, '{"auths":{}}\n');

  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    TMPDIR: join(home, 'tmp'),
    XDG_DATA_HOME: join(home, 'data'),
    XDG_CONFIG_HOME: join(home, 'config'),
    XDG_RUNTIME_DIR: join(home, 'run'),
    DOCKER_CONFIG: join(home, 'docker'),
    REGISTRY_AUTH_FILE: authFile,
    CONTAINERS_REGISTRIES_CONF: registriesConf,
    // as root the blob-info cache would be the machine-wide one; a
    // non-zero "rootless" uid moves it under XDG_DATA_HOME
    _CONTAINERS_ROOTLESS_UID: '1000',
  };
}

/**
 * Runs skopeo with a private environment made for this one call.
 * Throws with skopeo's stderr (credentials blanked) on failure.
 */
export async function skopeo(
  args: readonly string[], secrets: readonly string[] = [],
): Promise<Buffer> {
  requireBinaries(['skopeo']);
  const home = await makeTempDir('skopeo');
  try {
    const env = await skopeoEnv(home);
    const { stdout } = await runCommand('skopeo',
      ['--insecure-policy', ...args], { env, secrets });
    return stdout;
  } finally {
    await removeDir(home);
  }
}

/**
 * Pushes `layoutRef` of an OCI layout to `registry` as `reference`
 * (`repository:tag` or `repository@sha256:...`), every platform, digests
 * unchanged.
 */
export async function pushLayout(
  layoutDir: string,
  layoutRef: string,
  registry: RegistryLike,
  reference: string,
  credentials?: UserCredentials | null,
): Promise<void> {
  const creds = credentialsFor(registry, credentials);
  await skopeo([
    'copy', '--all', '--preserve-digests', '--quiet',
    '--dest-tls-verify=false', ...credsFlags('dest', creds),
    `oci:${layoutDir}:${layoutRef}`,
    `docker://${registry.host}/${reference}`,
  ], creds ? [creds.password] : []);
}

/**
 * Pushes a fixture's whole tree as `reference` (`repository:tag` or
 * `repository@digest`), digests unchanged. skopeo does it, except for
 * what skopeo 1.9 cannot read from an OCI layout (a Docker manifest list,
 * an index inside an index): those go through `pushFixtureRaw`.
 */
export function pushFixture(
  fixture: Fixture,
  registry: RegistryLike,
  reference: string,
  credentials?: UserCredentials | null,
): Promise<void> {
  const needsRaw = fixture.mediaType === DockerMediaType.manifestList ||
    fixture.manifests.slice(1).some((m) =>
      m.mediaType === OciMediaType.index ||
      m.mediaType === DockerMediaType.manifestList);
  if (!needsRaw) {
    return pushLayout(fixture.layoutDir, fixture.ref, registry, reference,
      credentials);
  }

  const at = reference.indexOf('@');
  const colon = reference.lastIndexOf(':');
  const [repository, tag] = at >= 0
    ? [reference.slice(0, at), reference.slice(at + 1)]
    : colon > reference.lastIndexOf('/')
      ? [reference.slice(0, colon), reference.slice(colon + 1)]
      : [reference, 'latest'];
  return pushFixtureRaw(fixture, registry, repository, tag,
    credentialsFor(registry, credentials) ?? null);
}

/** `skopeo inspect --raw`: the manifest's exact bytes and their digest. */
export async function inspectRaw(
  registry: RegistryLike,
  reference: string,
  credentials?: UserCredentials | null,
): Promise<RawManifest> {
  const creds = credentialsFor(registry, credentials);
  const bytes = await skopeo([
    'inspect', '--raw', '--tls-verify=false', ...credsFlags('', creds),
    `docker://${registry.host}/${reference}`,
  ], creds ? [creds.password] : []);

  let mediaType: string | undefined;
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as
      { mediaType?: unknown };
    if (typeof parsed.mediaType === 'string') mediaType = parsed.mediaType;
  } catch {
    mediaType = undefined;
  }
  return {
    bytes,
    digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
    mediaType,
  };
}

export interface CopiedLayout {
  layoutDir: string;
  ref: string;
  remove(): Promise<void>;
}

/**
 * Copies an image with every platform from a registry into a fresh OCI
 * layout, proving it is complete and readable. Docker media types are
 * converted to OCI on the way (an OCI layout holds no others), unless
 * `preserveDigests` asks skopeo to refuse any change.
 */
export async function copyToLayout(
  registry: RegistryLike,
  reference: string,
  credentials?: UserCredentials | null,
  options: { preserveDigests?: boolean } = {},
): Promise<CopiedLayout> {
  const creds = credentialsFor(registry, credentials);
  const layoutDir = await makeTempDir('copied');
  const unregister = onStopAll(() => removeDir(layoutDir));
  const remove = async () => {
    unregister();
    await removeDir(layoutDir);
  };
  try {
    await skopeo([
      'copy', '--all', '--quiet',
      ...(options.preserveDigests ? ['--preserve-digests'] : []),
      '--src-tls-verify=false', ...credsFlags('src', creds),
      `docker://${registry.host}/${reference}`,
      `oci:${layoutDir}:copied`,
    ], creds ? [creds.password] : []);
  } catch (error) {
    await remove();
    throw error;
  }
  return { layoutDir, ref: 'copied', remove };
}

/** `skopeo copy --all` between two registries (for comparisons). */
export async function copyBetween(
  source: RegistryLike, sourceReference: string,
  target: RegistryLike, targetReference: string,
  options: { preserveDigests?: boolean } = {},
): Promise<void> {
  const src = credentialsFor(source);
  const dest = credentialsFor(target);
  await skopeo([
    'copy', '--all', '--quiet',
    ...(options.preserveDigests ?? true ? ['--preserve-digests'] : []),
    '--src-tls-verify=false', ...credsFlags('src', src),
    '--dest-tls-verify=false', ...credsFlags('dest', dest),
    `docker://${source.host}/${sourceReference}`,
    `docker://${target.host}/${targetReference}`,
  ], [src?.password ?? '', dest?.password ?? ''].filter(Boolean));
}
