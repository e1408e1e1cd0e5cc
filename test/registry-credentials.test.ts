// Credential providers: a Docker config as `docker login` leaves it, a
// credential helper on PATH, a GitHub token for GHCR, and their chain.

import {
  chmod, mkdir, mkdtemp, readFile, rm, writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { AuthenticationError, InvalidInputError }
  from '../functions/lib/errors.js';
import { RegistryClient } from '../functions/lib/registry/client.js';
import {
  chainCredentials, dockerConfigCredentials, githubTokenCredentials,
  normalizeHost, registryCredentials, staticCredentials,
} from '../functions/lib/registry/credentials.js';
import {
  createLayout, pushFixture, requireBinaries, startRegistry, stopAll,
} from './harness/index.js';

const base64 = (text: string) => Buffer.from(text).toString('base64');

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'registry-credentials-'));
  return () => rm(dir, { recursive: true, force: true });
});

afterAll(stopAll);

async function writeConfig(config: unknown, folder = dir): Promise<void> {
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, 'config.json'), JSON.stringify(config));
}

/**
 * A fake `docker-credential-NAME` that answers from a table: host ->
 * credentials, and logs each host asked for.
 */
async function writeHelper(name: string,
  table: Record<string, { Username: string; Secret: string }>):
  Promise<{ env: NodeJS.ProcessEnv; asked: string }> {
  const bin = join(dir, 'bin');
  await mkdir(bin, { recursive: true });
  const asked = join(dir, `${name}-asked.log`);
  const script = join(bin, `docker-credential-${name}`);
  await writeFile(script, [
    '#!/bin/sh',
    '[ "$1" = get ] || exit 2',
    'read -r host',
    `printf '%s\\n' "$host" >> '${asked}'`,
    'case "$host" in',
    ...Object.entries(table).map(([host, answer]) =>
      `  '${host}') printf '%s' '${JSON.stringify({ ServerURL: host,
        ...answer })}'; exit 0 ;;`),
    '  *) echo "credentials not found in native keychain"; exit 1 ;;',
    'esac',
  ].join('\n'));
  await chmod(script, 0o755);
  return { env: { PATH: `${bin}:${process.env.PATH ?? ''}` }, asked };
}

describe('dockerConfigCredentials', () => {
  it('reads an auths entry with a base64 auth, keyed with or without ' +
    'scheme', async () => {
    // Prepare
    await writeConfig({ auths: {
      'https://ghcr.io': { auth: base64('octo:pass:with:colons') },
      '127.0.0.1:5000': { auth: base64('local:secret') },
    } });
    const provider = dockerConfigCredentials({ configDir: dir });

    // Act
    const ghcr = await provider('ghcr.io');
    const local = await provider('127.0.0.1:5000');
    const other = await provider('quay.io');

    // Assess
    expect(ghcr).toEqual({ username: 'octo', password: 'pass:with:colons' });
    expect(local).toEqual({ username: 'local', password: 'secret' });
    expect(other).toBeUndefined();
  });

  it('reads username/password and identitytoken entries', async () => {
    // Prepare
    await writeConfig({ auths: {
      'registry.example.com': { username: 'u', password: 'p' },
      'oauth.example.com': { auth: base64('<token>:'),
        identitytoken: 'refresh-1' },
    } });
    const provider = dockerConfigCredentials({ configDir: dir });

    // Act
    const plain = await provider('registry.example.com');
    const oauth = await provider('oauth.example.com');

    // Assess
    expect(plain).toEqual({ username: 'u', password: 'p' });
    expect(oauth).toEqual({ identityToken: 'refresh-1' });
  });

  it('finds ~/.docker/config.json when no config folder is given',
    async () => {
      // Prepare
      await writeConfig({ auths: { 'ghcr.io': { auth: base64('a:b') } } },
        join(dir, '.docker'));

      // Act
      const credentials = await dockerConfigCredentials({ homeDir: dir })(
        'ghcr.io');

      // Assess
      expect(credentials).toEqual({ username: 'a', password: 'b' });
    });

  it('matches Docker Hub under its v1 URL key for every name of it',
    async () => {
      // Prepare
      await writeConfig({ auths: {
        'https://index.docker.io/v1/': { auth: base64('hub:pw') },
      } });
      const provider = dockerConfigCredentials({ configDir: dir });

      // Act
      const found = await Promise.all(['registry-1.docker.io', 'docker.io',
        'index.docker.io'].map((host) => provider(host)));

      // Assess
      expect(found).toEqual(Array(3).fill({ username: 'hub', password: 'pw' }));
    });

  it('has nothing for a missing config file', async () => {
    // Act
    const credentials = await dockerConfigCredentials({
      configDir: join(dir, 'absent') })('ghcr.io');

    // Assess
    expect(credentials).toBeUndefined();
  });

  it('refuses a config that is not JSON without quoting it', async () => {
    // Prepare
    await writeFile(join(dir, 'config.json'), '{"auths": secret-value');

    // Act
    const error = await dockerConfigCredentials({ configDir: dir })(
      'ghcr.io').catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as Error).message).toContain('not valid JSON');
    expect((error as Error).message).not.toContain('secret-value');
  });

  it('asks the credHelpers helper named for the host, over the entry',
    async () => {
      // Prepare
      const helper = await writeHelper('test', {
        'ghcr.io': { Username: 'from-helper', Secret: 'helper-secret' },
      });
      await writeConfig({
        credHelpers: { 'ghcr.io': 'test' },
        auths: { 'ghcr.io': { auth: base64('from-file:x') } },
      });
      const provider = dockerConfigCredentials({ configDir: dir,
        helperEnv: helper.env });

      // Act
      const credentials = await provider('ghcr.io');

      // Assess
      expect(credentials).toEqual({ username: 'from-helper',
        password: 'helper-secret' });
    });

  it('asks the credsStore for every host and falls back to auths',
    async () => {
      // Prepare
      const helper = await writeHelper('store', {
        'quay.io': { Username: 'q', Secret: 's' },
        'oauth.example.com': { Username: '<token>', Secret: 'refresh-2' },
      });
      await writeConfig({
        credsStore: 'store',
        auths: { 'ghcr.io': { auth: base64('file:pw') } },
      });
      const provider = dockerConfigCredentials({ configDir: dir,
        helperEnv: helper.env });

      // Act
      const quay = await provider('quay.io');
      const oauth = await provider('oauth.example.com');
      const ghcr = await provider('ghcr.io');

      // Assess
      expect(quay).toEqual({ username: 'q', password: 's' });
      expect(oauth).toEqual({ identityToken: 'refresh-2' });
      expect(ghcr).toEqual({ username: 'file', password: 'pw' });
      expect((await readFile(helper.asked, 'utf8')).trim().split('\n'))
        .toEqual(['quay.io', 'oauth.example.com', 'ghcr.io']);
    });

  it('asks a helper for Docker Hub by the key docker login stores',
    async () => {
      // Prepare
      const helper = await writeHelper('store', {
        'https://index.docker.io/v1/': { Username: 'hub', Secret: 'pw' },
      });
      await writeConfig({ credsStore: 'store' });
      const provider = dockerConfigCredentials({ configDir: dir,
        helperEnv: helper.env });

      // Act
      const credentials = await provider('registry-1.docker.io');

      // Assess
      expect(credentials).toEqual({ username: 'hub', password: 'pw' });
    });

  it('fails clearly when a credHelpers helper is not on PATH', async () => {
    // Prepare
    await writeConfig({ credHelpers: { 'ghcr.io': 'absent' } });
    const provider = dockerConfigCredentials({ configDir: dir,
      helperEnv: { PATH: join(dir, 'empty') } });

    // Act
    const error = await provider('ghcr.io').catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as Error).message)
      .toContain('docker-credential-absent');
  });

  it('skips a credsStore helper that is not installed', async () => {
    // Prepare
    await writeConfig({ credsStore: 'desktop',
      auths: { 'ghcr.io': { auth: base64('a:b') } } });
    const warnings: string[] = [];
    const provider = dockerConfigCredentials({ configDir: dir,
      helperEnv: { PATH: join(dir, 'empty') },
      logger: { debug: () => {}, warn: (m) => warnings.push(m) } });

    // Act
    const credentials = await provider('ghcr.io');

    // Assess
    expect(credentials).toEqual({ username: 'a', password: 'b' });
    expect(warnings).toHaveLength(1);
  });

  it('reports a failing helper as an AuthenticationError', async () => {
    // Prepare
    const bin = join(dir, 'bin');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'docker-credential-broken'),
      '#!/bin/sh\necho "keyring locked" >&2\nexit 3\n');
    await chmod(join(bin, 'docker-credential-broken'), 0o755);
    await writeConfig({ credHelpers: { 'ghcr.io': 'broken' } });
    const provider = dockerConfigCredentials({ configDir: dir,
      helperEnv: { PATH: bin } });

    // Act
    const error = await provider('ghcr.io').catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(AuthenticationError);
    expect((error as Error).message).toMatch(/exit 3: keyring locked/);
  });
});

describe('githubTokenCredentials and registryCredentials', () => {
  it('gives the token to GHCR only, with a default user name', async () => {
    // Prepare
    const provider = githubTokenCredentials({ token: 'ghp_token' });

    // Act
    const ghcr = await provider('ghcr.io');
    const other = await provider('quay.io');

    // Assess
    expect(ghcr).toEqual({ username: 'ghcr-backup', password: 'ghp_token' });
    expect(other).toBeUndefined();
  });

  it('gives the token to the hosts it is told are the source', async () => {
    // Prepare
    const provider = githubTokenCredentials({ token: 't', username: 'me',
      hosts: ['ghe.example.com:8443'] });

    // Act
    const credentials = await provider('GHE.example.com:8443');

    // Assess
    expect(credentials).toEqual({ username: 'me', password: 't' });
  });

  it('prefers the Docker config entry, then the GitHub token', async () => {
    // Prepare
    await writeConfig({ auths: { 'ghcr.io': { auth: base64('docker:pw') } } });
    const withEntry = registryCredentials({ dockerConfigDir: dir,
      githubToken: 'ghp_x' });
    const withoutEntry = registryCredentials({
      dockerConfigDir: join(dir, 'none'), githubToken: 'ghp_x' });

    // Act
    const fromDocker = await withEntry('ghcr.io');
    const fromToken = await withoutEntry('ghcr.io');

    // Assess
    expect(fromDocker).toEqual({ username: 'docker', password: 'pw' });
    expect(fromToken).toEqual({ username: 'ghcr-backup', password: 'ghp_x' });
  });

  it('chains providers, the first with an answer winning', async () => {
    // Prepare
    const chain = chainCredentials(
      staticCredentials({ 'a.example': { username: '1', password: '1' } }),
      staticCredentials({ 'a.example': { username: '2', password: '2' },
        'b.example': { username: '3', password: '3' } }));

    // Act
    const found = await Promise.all(['a.example', 'b.example', 'c.example']
      .map((host) => chain(host)));

    // Assess
    expect(found.map((c) => c && 'username' in c ? c.username : undefined))
      .toEqual(['1', '3', undefined]);
  });

  it('normalizes config keys to host[:port]', () => {
    expect(normalizeHost('https://Registry.Example.com:5000/v2/'))
      .toBe('registry.example.com:5000');
    expect(normalizeHost('docker.io')).toBe('index.docker.io');
  });
});

describe('a RegistryClient with credentials from a helper', () => {
  beforeAll(() => {
    requireBinaries();
  });

  it('pulls from an htpasswd registry with what the helper gave',
    async () => {
      // Prepare
      const registry = await startRegistry({ auth: 'htpasswd' });
      const layout = await createLayout({ logSeed: false });
      const image = await layout.image();
      await pushFixture(image, registry, 'team/app:v1');
      const helper = await writeHelper('test', {
        [registry.host]: { Username: registry.credentials.username,
          Secret: registry.credentials.password },
      });
      await writeConfig({ credHelpers: { [registry.host]: 'test' } });
      const client = new RegistryClient({
        endpoint: { host: registry.host, scheme: 'http' },
        credentials: dockerConfigCredentials({ configDir: dir,
          helperEnv: helper.env }),
      });

      // Act
      const manifest = await client.getManifest('team/app', 'v1');

      // Assess
      expect(manifest.digest).toBe(image.digest);
      await registry.stop();
    });
});
