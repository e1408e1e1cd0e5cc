// Real CNCF Distribution registries (`docker-registry`) for tests: one
// process per registry, on 127.0.0.1 and a free port, with its own storage
// folder, no auth, htpasswd (bcrypt) or token auth through our issuer.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import {
  freePort, makeTempDir, onStopAll, removeDir, runCommand,
  stopOnce, trackChild,
} from './process.js';
import { findBinary, requireBinaries } from './require.js';
import {
  startTokenIssuer, type TokenIssuer, type TokenIssuerOptions,
  type UserCredentials,
} from './token-issuer.js';

export type RegistryAuthMode = 'none' | 'htpasswd' | 'token';

export interface StartRegistryOptions {
  /** Default 'none'. */
  auth?: RegistryAuthMode;
  /** Accepted users (htpasswd, token); default one random user. */
  users?: UserCredentials[];
  /** Token issuer settings (token auth only). */
  token?: Omit<TokenIssuerOptions, 'service' | 'users'>;
  /** A label for temp folders and error messages. */
  name?: string;
}

/** One request as the registry's access log reports it. */
export interface RegistryRequest {
  method: string;
  /** The request target as sent: path and query. */
  uri: string;
  /** `uri` without the query. */
  path: string;
  query: URLSearchParams;
  status: number;
  /** Response body bytes written. */
  bytes: number;
  userAgent: string;
}

export interface TestRegistry {
  readonly name: string;
  /** `127.0.0.1:PORT`: what goes in an image reference. */
  readonly host: string;
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  readonly port: number;
  readonly auth: RegistryAuthMode;
  /** The first user (ignored by an auth 'none' registry). */
  readonly credentials: UserCredentials;
  readonly users: readonly UserCredentials[];
  /** Root of the registry's filesystem storage. */
  readonly storageDir: string;
  /** The token server, for token auth. */
  readonly tokenIssuer?: TokenIssuer;
  /**
   * Every request received since start (or the last reset), from the
   * access log, in the order they completed. Waits until the log has
   * caught up with every request answered before the call.
   */
  requests(): Promise<RegistryRequest[]>;
  /** Forgets the requests logged so far (after the log caught up). */
  resetRequests(): Promise<void>;
  /** The registry's own log (stdout and stderr), for failure messages. */
  log(): string;
  /** Kills the registry and removes its storage; safe to call twice. */
  stop(): Promise<void>;
}

const SYNC_MARKER = 'harness-sync';
const ACCESS_LINE = new RegExp(
  '^\\S+ - \\S+ \\[[^\\]]+\\] "(\\S+) (\\S+) [^"]*" (\\d{3}) (\\d+|-) ' +
  '"[^"]*" "([^"]*)"');

/**
 * Starts a registry and waits until `/v2/` answers. Stop it with
 * `stop()`, or `stopAll()` in `afterAll`; it is killed in any case when
 * the test process exits.
 */
export async function startRegistry(
  options: StartRegistryOptions = {},
): Promise<TestRegistry> {
  requireBinaries(['docker-registry', 'openssl', 'htpasswd']);

  // a port taken between freePort() and the registry's bind: try another
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (error) {
      if (attempt >= 3 || !(error instanceof PortTakenError)) throw error;
    }
  }
}

class PortTakenError extends Error {}

async function startOnce(
  options: StartRegistryOptions,
): Promise<TestRegistry> {
  const auth = options.auth ?? 'none';
  const name = options.name ?? `registry-${auth}`;
  const users = options.users ?? [{
    username: 'harness-user',
    password: randomBytes(12).toString('hex'),
  }];
  const dir = await makeTempDir(name);
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const storageDir = join(dir, 'storage');

  let tokenIssuer: TokenIssuer | undefined;
  let child: ChildProcess | undefined;
  try {
    let authConfig: object | undefined;
    if (auth === 'htpasswd') {
      const path = join(dir, 'htpasswd');
      await writeFile(path, await htpasswdEntries(users));
      authConfig = { htpasswd: { realm: 'ghcr-backup-test', path } };
    } else if (auth === 'token') {
      tokenIssuer = await startTokenIssuer(
        { ...options.token, service: host, users });
      authConfig = {
        token: {
          realm: tokenIssuer.realm,
          service: tokenIssuer.service,
          issuer: tokenIssuer.issuer,
          rootcertbundle: tokenIssuer.certPath,
        },
      };
    }

    // JSON is YAML: no quoting rules to get wrong
    const config = {
      version: '0.1',
      log: { level: 'info', formatter: 'text' },
      storage: {
        filesystem: { rootdirectory: storageDir },
        delete: { enabled: true },
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: { addr: host, secret: randomBytes(16).toString('hex') },
      // without an allow list 2.8 refuses every manifest naming foreign
      // layer URLs; the copy tests push and copy such images
      validation: { manifests: { urls: { allow: ['^https?://'] } } },
      ...(authConfig ? { auth: authConfig } : {}),
    };
    const configPath = join(dir, 'config.yml');
    await writeFile(configPath, JSON.stringify(config, null, 2));

    child = spawn(findBinary('docker-registry')!, ['serve', configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    trackChild(child);
    return await attach(child, {
      name, auth, host, port, users, storageDir, dir, tokenIssuer,
    });
  } catch (error) {
    child?.kill('SIGKILL');
    await tokenIssuer?.stop();
    await removeDir(dir);
    throw error;
  }
}

interface Setup {
  name: string;
  auth: RegistryAuthMode;
  host: string;
  port: number;
  users: UserCredentials[];
  storageDir: string;
  dir: string;
  tokenIssuer?: TokenIssuer;
}

async function attach(
  child: ChildProcess, setup: Setup,
): Promise<TestRegistry> {
  let logText = '';
  let requests: RegistryRequest[] = [];
  const seenMarkers = new Set<string>();
  const markerWaiters = new Map<string, () => void>();

  // the access log goes to stdout, everything else to stderr
  const onLine = (line: string) => {
    logText += `${line}\n`;
    if (logText.length > 4_000_000) logText = logText.slice(-2_000_000);

    const match = ACCESS_LINE.exec(line);
    if (!match) return;
    const uri = match[2]!;
    const url = new URL(uri, 'http://registry');
    const marker = url.searchParams.get(SYNC_MARKER);
    if (marker !== null) {
      seenMarkers.add(marker);
      markerWaiters.get(marker)?.();
      return;
    }
    requests.push({
      method: match[1]!,
      uri,
      path: url.pathname,
      query: url.searchParams,
      status: Number(match[3]),
      bytes: match[4] === '-' ? 0 : Number(match[4]),
      userAgent: match[5]!,
    });
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);

  const exited = new Promise<void>((resolve) => child.once('exit', () => {
    resolve();
  }));
  const url = `http://${setup.host}`;

  // a marker request whose log line, once seen, follows every earlier one
  const sync = async () => {
    const marker = randomUUID();
    const seen = new Promise<void>((resolve) => {
      markerWaiters.set(marker, resolve);
    });
    await probe(`${url}/v2/?${SYNC_MARKER}=${marker}`);
    await Promise.race([
      seen,
      exited.then(() => {
        throw new Error(`registry ${setup.name} (${setup.host}) exited`);
      }),
    ]);
    markerWaiters.delete(marker);
  };

  await waitUntilServing(setup, url, exited, () => logText);

  const stop = stopOnce(async () => {
    unregister();
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }
    await setup.tokenIssuer?.stop();
    await removeDir(setup.dir);
  });
  const unregister = onStopAll(stop);

  return {
    name: setup.name,
    host: setup.host,
    url,
    port: setup.port,
    auth: setup.auth,
    credentials: setup.users[0]!,
    users: setup.users,
    storageDir: setup.storageDir,
    tokenIssuer: setup.tokenIssuer,
    requests: async () => {
      await sync();
      return [...requests];
    },
    resetRequests: async () => {
      await sync();
      requests = [];
    },
    log: () => logText,
    stop,
  };
}

async function waitUntilServing(
  setup: Setup, url: string, exited: Promise<void>, log: () => string,
): Promise<void> {
  let hasExited = false;
  void exited.then(() => { hasExited = true; });
  const deadline = Date.now() + 15_000;

  while (Date.now() < deadline) {
    if (hasExited) {
      if (/address already in use/.test(log())) throw new PortTakenError();
      throw new Error(`registry ${setup.name} exited at start:\n${log()}`);
    }
    const status = await probe(`${url}/v2/?${SYNC_MARKER}=start`)
      .catch(() => undefined);
    if (status === 200 || status === 401) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(
    `registry ${setup.name} did not answer on ${url}/v2/ within 15 s:\n` +
    log());
}

/** A GET without keep-alive, so no socket outlives the test. */
function probe(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout on ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

/** htpasswd file content with bcrypt entries, the only kind 2.8 takes. */
export async function htpasswdEntries(
  users: readonly UserCredentials[],
): Promise<string> {
  let text = '';
  for (const user of users) {
    const { stdout } = await runCommand('htpasswd',
      ['-Bbn', user.username, user.password], { secrets: [user.password] });
    text += `${stdout.toString('utf8').trim()}\n`;
  }
  return text;
}
