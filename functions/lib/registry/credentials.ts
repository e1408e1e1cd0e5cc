// Where registry credentials come from, as composable providers.
//
// The core reads no environment: the CLI or a handler passes in the Docker
// config folder, the home folder and a GitHub token, and composes the
// providers it wants. `registryCredentials` is the usual composition: the
// Docker config first, then a GitHub token for GHCR.

import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { AuthenticationError, InvalidInputError, redact } from '../errors.js';
import type { CredentialProvider, Credentials, Logger } from './types.js';

/** Hands out fixed credentials per host (`host[:port]`). */
export function staticCredentials(
  entries: Readonly<Record<string, Credentials>>): CredentialProvider {
  const byHost = new Map(Object.entries(entries)
    .map(([host, credentials]) => [normalizeHost(host), credentials]));
  return async (host) => byHost.get(normalizeHost(host));
}

/** The first provider that has credentials for a host wins. */
export function chainCredentials(...providers: CredentialProvider[]):
  CredentialProvider {
  return async (host) => {
    for (const provider of providers) {
      const credentials = await provider(host);
      if (credentials) return credentials;
    }
    return undefined;
  };
}

export interface GitHubTokenOptions {
  /** A token with `read:packages` (and `write:packages` to push). */
  token?: string;
  /** GHCR accepts any non-empty user name with a token. */
  username?: string;
  /** Hosts that take the token. @default ['ghcr.io'] */
  hosts?: readonly string[];
}

/** A GitHub token as the password for GHCR (or the hosts given). */
export function githubTokenCredentials(options: GitHubTokenOptions):
  CredentialProvider {
  const hosts = new Set((options.hosts ?? ['ghcr.io']).map(normalizeHost));
  const username = options.username || 'ghcr-backup';
  return async (host) => options.token && hosts.has(normalizeHost(host))
    ? { username, password: options.token }
    : undefined;
}

export interface DockerConfigOptions {
  /** The folder of `config.json` (`$DOCKER_CONFIG`); wins over homeDir. */
  configDir?: string;
  /** The home folder, for `~/.docker/config.json`. */
  homeDir?: string;
  /**
   * The environment credential helpers run with (their PATH finds them).
   * @default the environment of this process
   */
  helperEnv?: NodeJS.ProcessEnv;
  logger?: Logger;
}

/** The part of a Docker `config.json` we read. */
interface DockerConfig {
  auths?: Record<string, {
    auth?: string;
    username?: string;
    password?: string;
    identitytoken?: string;
  }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

/**
 * Credentials from a Docker config, as `docker login` leaves them: a
 * credential helper named for the host (`credHelpers`), else the default
 * store (`credsStore`), else the `auths` entry itself. The file is read
 * once; helpers run on each call, so short-lived secrets stay fresh.
 */
export function dockerConfigCredentials(options: DockerConfigOptions):
  CredentialProvider {
  const file = options.configDir
    ? join(options.configDir, 'config.json')
    : options.homeDir ? join(options.homeDir, '.docker', 'config.json')
      : undefined;
  let config: Promise<DockerConfig> | undefined;

  return async (host) => {
    if (!file) return undefined;
    config ??= readDockerConfig(file);
    const { auths = {}, credsStore, credHelpers = {} } = await config;
    const wanted = normalizeHost(host);

    const helperKey = Object.keys(credHelpers)
      .find((key) => normalizeHost(key) === wanted);
    if (helperKey) {
      return runHelper(credHelpers[helperKey]!, serverAddress(host), options,
        'required');
    }

    if (credsStore) {
      const stored = await runHelper(credsStore, serverAddress(host), options,
        'optional');
      if (stored) return stored;
    }

    const entryKey = Object.keys(auths).find((key) => key === host) ??
      Object.keys(auths).find((key) => normalizeHost(key) === wanted);
    const entry = entryKey ? auths[entryKey] : undefined;
    if (!entry) return undefined;

    if (entry.identitytoken) return { identityToken: entry.identitytoken };
    if (entry.username && entry.password) {
      return { username: entry.username, password: entry.password };
    }
    if (entry.auth) return decodeAuth(entry.auth, file, entryKey!);
    return undefined;
  };
}

export interface RegistryCredentialsOptions {
  /** `$DOCKER_CONFIG`, when set. */
  dockerConfigDir?: string;
  /** The home folder (`os.homedir()`). */
  homeDir?: string;
  /** `$GITHUB_TOKEN`, used for GHCR when the Docker config has nothing. */
  githubToken?: string;
  /** `$GITHUB_USERNAME`; any non-empty name works for GHCR. */
  githubUsername?: string;
  /** Registries that take the GitHub token. @default ['ghcr.io'] */
  githubHosts?: readonly string[];
  helperEnv?: NodeJS.ProcessEnv;
  logger?: Logger;
}

/** The Docker config, then the GitHub token for GHCR-like hosts. */
export function registryCredentials(options: RegistryCredentialsOptions):
  CredentialProvider {
  return chainCredentials(
    dockerConfigCredentials({
      configDir: options.dockerConfigDir,
      homeDir: options.homeDir,
      helperEnv: options.helperEnv,
      logger: options.logger,
    }),
    githubTokenCredentials({
      token: options.githubToken,
      username: options.githubUsername,
      hosts: options.githubHosts,
    }),
  );
}

/** Docker Hub answers to several names; its config key is the v1 URL. */
const DOCKER_HUB_HOSTS = new Set([
  'docker.io', 'index.docker.io', 'registry-1.docker.io',
  'registry.hub.docker.com',
]);
const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';

/**
 * `https://Host:5000/v1/` -> `host:5000`: config keys are written with or
 * without scheme and path; Docker Hub's names all become one.
 */
export function normalizeHost(key: string): string {
  const host = key.trim().toLowerCase()
    .replace(/^[a-z][a-z0-9+.-]*:\/\//, '')
    .replace(/\/.*$/, '');
  return DOCKER_HUB_HOSTS.has(host) ? 'index.docker.io' : host;
}

/** What a helper is asked for: the host as `docker login` stored it. */
function serverAddress(host: string): string {
  return normalizeHost(host) === 'index.docker.io' ? DOCKER_HUB_KEY : host;
}

async function readDockerConfig(file: string): Promise<DockerConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new InvalidInputError(`cannot read the Docker config ${file}`,
      { cause: error });
  }

  try {
    return JSON.parse(text) as DockerConfig;
  } catch {
    // the parser's message may quote the file, secrets included
    throw new InvalidInputError(`the Docker config ${file} is not valid JSON`,
      { hint: 'fix or remove the file, or log in again (docker login)' });
  }
}

function decodeAuth(auth: string, file: string, key: string): Credentials {
  const text = Buffer.from(auth, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon <= 0) {
    throw new InvalidInputError(`the "auth" of ${key} in ${file} is not ` +
      'base64 of USER:PASSWORD', { hint: `log in again: docker login ${key}` });
  }
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** What helpers say when they hold nothing for the host. */
const NOT_FOUND =
  /credentials not found|not found in native keychain|no credentials/i;

/** Helpers that prompt (a GPG pinentry) get this long. */
const HELPER_TIMEOUT_MS = 60_000;

/**
 * Runs `docker-credential-NAME get` with the server address on stdin.
 * A missing default store (`credsStore`, often left behind by Docker
 * Desktop) is warned about and skipped; a missing helper the config names
 * for this very host is an error.
 */
async function runHelper(name: string, server: string,
  options: DockerConfigOptions, need: 'required' | 'optional'):
  Promise<Credentials | undefined> {
  const program = `docker-credential-${name}`;
  const result = await new Promise<{ code: number | null; stdout: string;
    stderr: string; error?: NodeJS.ErrnoException }>((resolve) => {
    const child = spawn(program, ['get'], {
      env: options.helperEnv ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: HELPER_TIMEOUT_MS,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => stdout += d);
    child.stderr.setEncoding('utf8').on('data', (d: string) => stderr += d);
    child.on('error', (error) =>
      resolve({ code: null, stdout, stderr, error }));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(server);
  });

  if (result.error?.code === 'ENOENT') {
    if (need === 'optional') {
      options.logger?.warn('credential store not found; skipping it', {
        helper: program,
      });
      return undefined;
    }
    throw new InvalidInputError(`the Docker config names the credential ` +
      `helper ${program} for ${server}, but it is not on PATH`, {
      hint: `install ${program}, or remove it from credHelpers`,
    });
  }

  const output = `${result.stdout}\n${result.stderr}`;
  if (result.code !== 0) {
    if (NOT_FOUND.test(output)) return undefined;
    const first = redact(output.trim().split('\n')[0] ?? '').slice(0, 200);
    throw new AuthenticationError(`${program} failed for ${server} ` +
      `(exit ${result.code ?? 'signal'}${first ? `: ${first}` : ''})`, {
      cause: result.error,
      hint: `check the helper, or log in again: docker login ${server}`,
    });
  }

  let parsed: { Username?: unknown; Secret?: unknown };
  try {
    parsed = JSON.parse(result.stdout) as typeof parsed;
  } catch {
    throw new AuthenticationError(`${program} printed something other ` +
      `than JSON for ${server}`);
  }
  if (typeof parsed.Secret !== 'string' || !parsed.Secret) return undefined;

  // an identity token is stored under the user name "<token>"
  if (parsed.Username === '<token>') return { identityToken: parsed.Secret };
  if (typeof parsed.Username !== 'string' || !parsed.Username) {
    return undefined;
  }
  return { username: parsed.Username, password: parsed.Secret };
}
