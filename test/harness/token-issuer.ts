// A token server in the manner of GHCR's, for Distribution's token auth.
//
// The registry answers 401 with `Bearer realm=...,service=...,scope=...`;
// the client asks this server for a token with Basic credentials (GET) or an
// OAuth2 form (POST), and gets a JWT that the registry checks against the
// certificate we give it. Each issuer has its own key, made per run.

import {
  createHash, generateKeyPairSync, randomBytes, randomUUID, sign,
  type KeyObject,
} from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import {
  createServer, type IncomingMessage, type Server, type ServerResponse,
} from 'node:http';
import { join } from 'node:path';

import {
  listenOnLoopback, makeTempDir, onStopAll, removeDir, runCommand, stopOnce,
} from './process.js';

export interface UserCredentials {
  username: string;
  password: string;
}

/** One `type:name:actions` scope of a token request. */
export interface TokenScope {
  type: string;
  name: string;
  actions: string[];
}

export interface GrantRequest extends TokenScope {
  /** undefined for an anonymous request. */
  username?: string;
}

/**
 * Decides which of the asked actions a token carries for one scope.
 * Return [] to grant nothing: the registry then answers 401
 * `insufficient_scope` for that repository.
 */
export type GrantPolicy = (request: GrantRequest) => readonly string[];

export interface TokenIssuerOptions {
  /** The `service` the registry announces, and the token's `aud`. */
  service: string;
  /** Accepted users; default one user with a random password. */
  users?: UserCredentials[];
  /** OAuth2 refresh tokens (`identitytoken`) accepted, -> username. */
  refreshTokens?: Record<string, string>;
  /** Tokens without credentials may pull; default false. */
  anonymousPull?: boolean;
  /** Which actions to grant; default `defaultGrant(anonymousPull)`. */
  grant?: GrantPolicy;
  /** Token lifetime; default 300 s. */
  tokenTtlSeconds?: number;
}

/** What a client asked the token server, for assertions. */
export interface TokenRequestRecord {
  method: string;
  service?: string;
  /** The raw `scope` parameters, in order. */
  scopes: string[];
  /** What kind of Authorization header came with it. */
  authorization: 'none' | 'basic' | 'bearer' | 'other';
  /** POST form's grant_type, when it was a POST. */
  grantType?: string;
  /** The user the credentials named, right or wrong. */
  username?: string;
  status: number;
  /** What the issued token carries (empty when refused). */
  granted: TokenScope[];
}

export interface TokenIssuer {
  /** `http://127.0.0.1:PORT/token`: the registry's `realm`. */
  readonly realm: string;
  readonly service: string;
  /** The JWT `iss` the registry expects. */
  readonly issuer: string;
  /** PEM certificate of the signing key: the registry's rootcertbundle. */
  readonly certPath: string;
  /** The libtrust key ID of the signing key (the JWT `kid`). */
  readonly keyId: string;
  /** The first user: the credentials most tests want. */
  readonly credentials: UserCredentials;
  readonly users: readonly UserCredentials[];
  /** Every token request received since start or the last reset. */
  requests(): TokenRequestRecord[];
  resetRequests(): void;
  /** Replaces the grant policy from now on; undefined restores the
   * default. */
  setGrantPolicy(policy?: GrantPolicy): void;
  /** The next `count` token requests get `status` (default 503) and,
   * when given, a Retry-After header. */
  failNext(count: number, options?: { status?: number; retryAfter?: string })
  : void;
  /** Issues a token directly, as the server would for `username`. */
  issueToken(username: string | undefined, scopes: TokenScope[]): string;
  stop(): Promise<void>;
}

const KNOWN_ACTIONS = ['pull', 'push', 'delete', '*'];

/**
 * The default policy: known users get every action they ask for; anonymous
 * requests get `pull` only when `anonymousPull` is set.
 */
export function defaultGrant(anonymousPull: boolean): GrantPolicy {
  return (request) => {
    if (request.username !== undefined) {
      return request.actions.filter((a) => KNOWN_ACTIONS.includes(a));
    }
    return anonymousPull && request.type === 'repository'
      ? request.actions.filter((a) => a === 'pull')
      : [];
  };
}

/** Starts a token server on 127.0.0.1 and a free port. */
export async function startTokenIssuer(
  options: TokenIssuerOptions,
): Promise<TokenIssuer> {
  const dir = await makeTempDir('token');
  try {
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const keyId = libtrustKeyId(key.publicKey);
    const certPath = await writeCertificate(dir, key.privateKey);
    return await listen(options, dir, key.privateKey, keyId, certPath);
  } catch (error) {
    await removeDir(dir);
    throw error;
  }
}

/**
 * Distribution's key ID: base32 of the first 240 bits of the sha256 of
 * the DER SubjectPublicKeyInfo, in groups of four joined by ':'.
 */
export function libtrustKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ format: 'der', type: 'spki' });
  const hash = createHash('sha256').update(der).digest().subarray(0, 30);
  return base32(hash).match(/.{4}/g)!.join(':');
}

function base32(bytes: Uint8Array): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

async function writeCertificate(
  dir: string, privateKey: KeyObject,
): Promise<string> {
  const keyPath = join(dir, 'signing-key.pem');
  const certPath = join(dir, 'signing-cert.pem');
  await writeFile(keyPath,
    privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });

  // node cannot make an x509 certificate; Distribution 2.8 insists on one
  await runCommand('openssl', [
    'req', '-x509', '-new', '-key', keyPath, '-out', certPath,
    '-days', '2', '-subj', '/CN=ghcr-backup test token issuer',
  ]);
  return certPath;
}

async function listen(
  options: TokenIssuerOptions, dir: string, privateKey: KeyObject,
  keyId: string, certPath: string,
): Promise<TokenIssuer> {
  const users = options.users ?? [{
    username: 'harness-user',
    password: randomBytes(12).toString('hex'),
  }];
  const anonymousPull = options.anonymousPull ?? false;
  const ttl = options.tokenTtlSeconds ?? 300;
  const issuerName = 'ghcr-backup-test-issuer';
  let policy: GrantPolicy = options.grant ?? defaultGrant(anonymousPull);
  let records: TokenRequestRecord[] = [];
  let failures: { left: number; status: number; retryAfter?: string }[] = [];

  const issueToken = (
    username: string | undefined, scopes: TokenScope[],
  ): string => {
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'ES256', typ: 'JWT', kid: keyId };
    const claims = {
      iss: issuerName,
      sub: username ?? '',
      aud: options.service,
      exp: now + ttl,
      nbf: now - 5,
      iat: now,
      jti: randomUUID(),
      access: scopes,
    };
    const signingInput = `${b64url(JSON.stringify(header))}.` +
      b64url(JSON.stringify(claims));

    // JWS wants R||S, not the DER node produces by default
    const signature = sign('sha256', Buffer.from(signingInput),
      { key: privateKey, dsaEncoding: 'ieee-p1363' });
    return `${signingInput}.${b64url(signature)}`;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://issuer');
    const record: TokenRequestRecord = {
      method: req.method ?? 'GET',
      scopes: [],
      authorization: authorizationKind(req.headers.authorization),
      status: 0,
      granted: [],
    };
    records.push(record);

    const reply = (status: number, body: unknown,
      headers: Record<string, string> = {}) => {
      record.status = status;
      res.writeHead(status,
        { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };

    const failure = failures.find((f) => f.left > 0);
    if (failure) {
      failure.left--;
      failures = failures.filter((f) => f.left > 0);
      req.resume();
      reply(failure.status, { errors: [{ code: 'UNAVAILABLE',
        message: 'injected by the test token issuer' }] },
      failure.retryAfter ? { 'retry-after': failure.retryAfter } : {});
      return;
    }

    if (url.pathname !== '/token') {
      reply(404, { errors: [{ code: 'NOT_FOUND', message: url.pathname }] });
      return;
    }

    // GET: Docker's token protocol; POST: its OAuth2 variant
    let params = url.searchParams;
    let username: string | undefined;
    let secretOk = true;
    if (req.method === 'POST') {
      params = new URLSearchParams(await readBody(req));
      record.grantType = params.get('grant_type') ?? undefined;
      if (record.grantType === 'password') {
        username = params.get('username') ?? '';
        secretOk = users.some((u) => u.username === username &&
          u.password === params.get('password'));
      } else if (record.grantType === 'refresh_token') {
        username = options.refreshTokens?.[
          params.get('refresh_token') ?? ''];
        secretOk = username !== undefined;
      } else {
        reply(400, { error: 'unsupported_grant_type' });
        return;
      }
    } else if (req.method === 'GET') {
      const basic = parseBasic(req.headers.authorization);
      if (basic) {
        username = basic.username;
        secretOk = users.some((u) => u.username === basic.username &&
          u.password === basic.password);
      } else if (record.authorization !== 'none') {
        secretOk = false;
      }
    } else {
      reply(405, { errors: [{ code: 'UNSUPPORTED' }] });
      return;
    }

    record.service = params.get('service') ?? undefined;
    record.scopes = params.getAll('scope')
      .flatMap((s) => s.split(' ')).filter(Boolean);
    record.username = username;

    if (!secretOk) {
      reply(401, { errors: [{ code: 'UNAUTHORIZED',
        message: 'authentication required' }] },
      { 'www-authenticate': 'Basic realm="ghcr-backup test issuer"' });
      return;
    }
    if (record.service !== undefined && record.service !== options.service) {
      reply(400, { errors: [{ code: 'DENIED',
        message: `unknown service ${record.service}` }] });
      return;
    }

    const granted: TokenScope[] = [];
    for (const raw of record.scopes) {
      const scope = parseScope(raw);
      if (!scope) continue;
      const actions = [...policy({ ...scope, username })];
      if (actions.length > 0) granted.push({ ...scope, actions });
    }
    record.granted = granted;

    const token = issueToken(username, granted);
    reply(200, {
      token,
      access_token: token,
      expires_in: ttl,
      issued_at: new Date().toISOString(),
    });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      res.writeHead(500);
      res.end(String(error));
    });
  });

  const port = await listenOnLoopback(server);
  const stop = stopOnce(async () => {
    unregister();
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
    await removeDir(dir);
  });
  const unregister = onStopAll(stop);

  return {
    realm: `http://127.0.0.1:${port}/token`,
    service: options.service,
    issuer: issuerName,
    certPath,
    keyId,
    credentials: users[0]!,
    users,
    requests: () => records.map((r) => ({ ...r })),
    resetRequests: () => { records = []; },
    setGrantPolicy: (next) => {
      policy = next ?? options.grant ?? defaultGrant(anonymousPull);
    },
    failNext: (count, failure = {}) => {
      failures.push({ left: count, status: failure.status ?? 503,
        retryAfter: failure.retryAfter });
    },
    issueToken,
    stop,
  };
}

/** `repository:owner/name:pull,push` -> its parts; undefined if odd. */
export function parseScope(raw: string): TokenScope | undefined {
  const first = raw.indexOf(':');
  const last = raw.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  return {
    type: raw.slice(0, first),
    name: raw.slice(first + 1, last),
    actions: raw.slice(last + 1).split(',').filter(Boolean),
  };
}

function authorizationKind(
  header: string | undefined,
): TokenRequestRecord['authorization'] {
  if (!header) return 'none';
  const kind = header.split(' ')[0]!.toLowerCase();
  return kind === 'basic' || kind === 'bearer' ? kind : 'other';
}

function parseBasic(
  header: string | undefined,
): UserCredentials | undefined {
  const match = /^basic\s+(\S+)$/i.exec(header ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return {
    username: decoded.slice(0, colon),
    password: decoded.slice(colon + 1),
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function b64url(data: string | Uint8Array): string {
  return Buffer.from(data).toString('base64url');
}
