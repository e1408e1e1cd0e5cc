// Authentication by challenge, as the distribution spec describes it.
//
// Nothing is configured per registry: the first 401 carries a
// `WWW-Authenticate` challenge that says how to authenticate. `Basic` means
// credentials on every request; `Bearer` names a token service (realm,
// service) where a token is fetched for a set of scopes, with the registry's
// credentials: Basic on a GET, or an `identitytoken` as an OAuth2 refresh
// token in a POST form. Tokens are cached per scope set and renewed shortly
// before they expire, or when the registry answers 401 to one.

import {
  RegistryAuthenticationError, RegistryInterruptedError,
  RegistryUnavailableError, type RegistryErrorContext,
} from './errors.js';
import {
  discard, isRetryableStatus, retryErrorFor, withRetries,
  type ResolvedRetryOptions, type Retried,
} from './retry.js';
import type {
  CredentialProvider, Credentials, Logger, RegistryEndpoint,
} from './types.js';

/** One challenge of a `WWW-Authenticate` header. */
export interface Challenge {
  /** Lowercase: `bearer`, `basic`, ... */
  scheme: string;
  /** Parameter names lowercase, values unquoted. */
  params: Record<string, string>;
}

/**
 * Parses a `WWW-Authenticate` value into its challenges:
 * `Bearer realm="https://x/token",service="x",scope="repository:a:pull"`.
 * Commas inside quoted values and several challenges in one header are
 * handled; malformed pieces are skipped rather than trusted.
 */
export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let current: Challenge | undefined;
  let i = 0;

  const skip = (chars: RegExp) => {
    while (i < header.length && chars.test(header[i]!)) i++;
  };
  const token = () => {
    const start = i;
    while (i < header.length && !/[\s,=]/.test(header[i]!)) i++;
    return header.slice(start, i);
  };

  while (i < header.length) {
    skip(/[\s,]/);
    const name = token();
    if (!name) {
      i++;
      continue;
    }

    skip(/\s/);
    if (header[i] !== '=' || !current) {
      // a new challenge: its scheme, then its parameters
      current = { scheme: name.toLowerCase(), params: {} };
      challenges.push(current);
      continue;
    }

    i++;
    skip(/\s/);
    current.params[name.toLowerCase()] = header[i] === '"'
      ? quoted()
      : token();
  }
  return challenges;

  function quoted(): string {
    let value = '';
    for (i++; i < header.length && header[i] !== '"'; i++) {
      if (header[i] === '\\' && i + 1 < header.length) i++;
      value += header[i];
    }
    i++;
    return value;
  }
}

/** `repository:NAME:ACTIONS`, the scope of a request on one repository. */
export function repositoryScope(repository: string,
  actions: readonly string[]): string {
  return `repository:${repository}:${actions.join(',')}`;
}

interface ParsedScope {
  resource: string;
  actions: Set<string>;
}

/** `type:name:actions` -> `type:name` and its actions. */
function parseScope(scope: string): ParsedScope {
  const last = scope.lastIndexOf(':');
  if (last < 0) return { resource: scope, actions: new Set() };
  return {
    resource: scope.slice(0, last),
    actions: new Set(scope.slice(last + 1).split(',').filter(Boolean)),
  };
}

/** True when a token asked for `held` was asked for all of `wanted`. */
function covers(held: readonly string[], wanted: readonly string[]): boolean {
  const have = held.map(parseScope);
  return wanted.map(parseScope).every((want) => {
    const match = have.find((scope) => scope.resource === want.resource);
    return !!match && [...want.actions].every((a) => match.actions.has(a));
  });
}

interface CachedToken {
  scopes: readonly string[];
  token: string;
  /** Epoch ms after which we fetch a new one. */
  renewAt: number;
}

/**
 * Why a token request failed, for no request in particular: several
 * requests may wait on one token request, and each builds its own error
 * from this, naming its own image rather than the first one's.
 */
class TokenFailure extends Error {
  constructor(
    readonly errorFor: (context: RegistryErrorContext) => unknown) {
    super('the token request failed');
  }
}

/** A token request in flight, and how many requests wait on it. */
interface PendingToken {
  token: Promise<CachedToken>;
  waiters: number;
  /** Stops it once every request waiting on it has been stopped. */
  controller: AbortController;
}

/** What `authorization()` decided, handed back when a request fails. */
export interface Authorization {
  header?: string;
  /** The cache key of the token used, to drop it on a 401. */
  key?: string;
}

export interface AuthenticatorOptions {
  endpoint: RegistryEndpoint;
  credentials: CredentialProvider;
  retry: ResolvedRetryOptions;
  logger?: Logger;
  /** Sent as the OAuth2 `client_id`. @default 'ghcr-backup' */
  clientId?: string;
  /** Clock, for tests of expiry. @default Date.now */
  now?: () => number;
}

/** Distribution's minimum token lifetime, assumed when none is given. */
const DEFAULT_TOKEN_SECONDS = 60;

/**
 * The authentication state of one registry: which scheme it asked for and
 * the tokens fetched so far. Safe for concurrent requests: one token fetch
 * per scope set is in flight at a time.
 */
export class Authenticator {
  readonly #options: AuthenticatorOptions;
  readonly #host: string;
  #scheme: 'unknown' | 'basic' | 'bearer' = 'unknown';
  #realm?: URL;
  #service?: string;
  #basic?: Promise<string | undefined>;
  readonly #tokens = new Map<string, CachedToken>();
  readonly #pending = new Map<string, PendingToken>();
  /** Whether the provider had credentials when last asked. */
  #hadCredentials = false;

  /** Token requests sent, for tests and diagnostics. */
  tokenRequests = 0;

  constructor(options: AuthenticatorOptions) {
    this.#options = options;
    this.#host = options.endpoint.host;
  }

  /**
   * The Authorization header for a request needing `scopes`, or none while
   * the registry has not challenged us (anonymous until told otherwise).
   */
  async authorization(scopes: readonly string[],
    context: RegistryErrorContext, signal?: AbortSignal):
    Promise<Authorization> {
    if (this.#scheme === 'basic') {
      return { header: await this.#basicHeader() };
    }
    if (this.#scheme !== 'bearer') return {};

    const cached = this.#usableToken(scopes);
    if (cached) return cached;

    const key = scopeKey(scopes);
    const token = await this.#fetchOnce(key, scopes, context, signal);
    return { header: `Bearer ${token.token}`, key };
  }

  /**
   * Learns from a 401's challenge. Drops the token or credentials that were
   * refused so that the next `authorization()` gets fresh ones; throws when
   * the challenge cannot be answered.
   */
  async challenge(header: string | null, used: Authorization,
    context: RegistryErrorContext): Promise<void> {
    const challenges = parseChallenges(header ?? '');
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');

    if (bearer?.params.realm) {
      this.#scheme = 'bearer';
      this.#realm = this.#checkRealm(bearer.params.realm, context);
      this.#service = bearer.params.service;
      if (used.key) this.#tokens.delete(used.key);
      return;
    }

    if (basic) {
      this.#scheme = 'basic';
      this.#basic = undefined;
      if (!(await this.#basicHeader())) {
        throw this.failure(header, context);
      }
      return;
    }

    const schemes = challenges.map((c) => c.scheme).join(', ') || 'none';
    throw new RegistryAuthenticationError(context,
      `${this.#host} answered 401 with an unsupported challenge (${schemes})`,
      { status: 401, hint: 'the registry asks for an authentication ' +
        'scheme this tool does not speak (Bearer and Basic are supported)' });
  }

  /** The error for a request that stays unauthorized after a challenge. */
  failure(header: string | null, context: RegistryErrorContext,
    status = 401): RegistryAuthenticationError {
    const challenge = parseChallenges(header ?? '')[0];
    const code = challenge?.params.error;
    const host = this.#host;

    if (!this.#hadCredentials) {
      return new RegistryAuthenticationError(context,
        `${host} requires credentials and none were found (HTTP ${status})`, {
          status, code,
          hint: `log in to ${host} (docker login ${host})`,
        });
    }
    if (code === 'insufficient_scope') {
      const scope = challenge?.params.scope;
      return new RegistryAuthenticationError(context,
        `the token for ${host} lacks access${scope ? ` to ${scope}` : ''} ` +
        `(HTTP ${status} insufficient_scope)`, {
          status, code, insufficientScope: true,
          hint: `check that the credentials for ${host} may ` +
            `${context.operation?.startsWith('GET') ||
              context.operation?.startsWith('HEAD') ? 'pull' : 'push to'} ` +
            `${context.repository ?? 'this repository'}`,
        });
    }

    return new RegistryAuthenticationError(context,
      `${host} refused the credentials (HTTP ${status})`, {
        status, code,
        hint: `check the credentials for ${host} (docker login ${host})`,
      });
  }

  #usableToken(scopes: readonly string[]): Authorization | undefined {
    const now = (this.#options.now ?? Date.now)();
    const exact = this.#tokens.get(scopeKey(scopes));
    if (exact && exact.renewAt > now) {
      return { header: `Bearer ${exact.token}`, key: scopeKey(scopes) };
    }

    for (const [key, token] of this.#tokens) {
      if (token.renewAt > now && covers(token.scopes, scopes)) {
        return { header: `Bearer ${token.token}`, key };
      }
    }
    return undefined;
  }

  /**
   * The token for `scopes`, fetched by one request while the others that
   * need it wait. Each waiter stops waiting on its own signal; the fetch
   * itself stops only when every waiter has stopped.
   */
  async #fetchOnce(key: string, scopes: readonly string[],
    requestContext: RegistryErrorContext, signal?: AbortSignal):
    Promise<CachedToken> {
    const context: RegistryErrorContext = {
      ...requestContext,
      operation: `token for ${requestContext.operation ?? 'request to'}`,
    };
    let pending = this.#pending.get(key);
    if (!pending) pending = this.#startFetch(key, scopes);

    pending.waiters++;
    try {
      return await untilAborted(pending.token, context, signal);
    } catch (error) {
      throw error instanceof TokenFailure ? error.errorFor(context) : error;
    } finally {
      pending.waiters--;
      if (pending.waiters === 0 && signal?.aborted) {
        this.#dropPending(key, pending);
        pending.controller.abort();
      }
    }
  }

  #startFetch(key: string, scopes: readonly string[]): PendingToken {
    const controller = new AbortController();
    const pending: PendingToken = {
      token: this.#fetchToken(scopes, controller.signal).then((token) => {
        this.#tokens.set(key, token);
        return token;
      }).finally(() => this.#dropPending(key, pending)),
      waiters: 0,
      controller,
    };

    // every waiter may have gone by the time it fails
    pending.token.catch(() => undefined);
    this.#pending.set(key, pending);
    return pending;
  }

  #dropPending(key: string, pending: PendingToken): void {
    if (this.#pending.get(key) === pending) this.#pending.delete(key);
  }

  /** Fetches a token; fails with a `TokenFailure`, named for no request. */
  async #fetchToken(scopes: readonly string[], signal: AbortSignal):
    Promise<CachedToken> {
    const realm = this.#realm!;
    const credentials = await this.#credentials();
    const request = tokenRequest(realm, this.#service, scopes, credentials,
      this.#options.clientId ?? 'ghcr-backup');

    const started = (this.#options.now ?? Date.now)();
    this.tokenRequests++;
    let retried: Retried;
    try {
      retried = await withRetries({
        options: this.#options.retry, signal, logger: this.#options.logger,
        context: { registry: this.#host, operation: 'token request' },
      }, () => fetch(request.url, {
        method: request.method,
        headers: request.headers,
        body: request.body,
        redirect: 'error',
        signal,
      }));
    } catch (error) {
      throw new TokenFailure((context) => retryErrorFor(error, context));
    }

    const { response, attempts } = retried;
    if (!response.ok) {
      await discard(response);
      throw new TokenFailure((context) =>
        this.#tokenFailure(response.status, realm, context, attempts));
    }

    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = await response.json() as typeof body;
    } catch (error) {
      throw new TokenFailure((context) =>
        new RegistryAuthenticationError(context,
          `the token service ${realm.host} answered with malformed JSON`,
          { cause: error }));
    }

    const token = typeof body.token === 'string' ? body.token
      : typeof body.access_token === 'string' ? body.access_token : undefined;
    if (!token) {
      throw new TokenFailure((context) =>
        new RegistryAuthenticationError(context,
          `the token service ${realm.host} answered without a token`));
    }

    // renew a little early, so a request never starts with a dying token
    const seconds = typeof body.expires_in === 'number' && body.expires_in > 0
      ? body.expires_in : DEFAULT_TOKEN_SECONDS;
    const margin = Math.min(30_000, seconds * 1000 / 5);
    this.#options.logger?.debug('fetched a registry token', {
      registry: this.#host, scopes, expiresInSeconds: seconds,
    });
    return { scopes, token, renewAt: started + seconds * 1000 - margin };
  }

  #tokenFailure(status: number, realm: URL, context: RegistryErrorContext,
    attempts: number): RegistryAuthenticationError | RegistryUnavailableError {
    const host = this.#host;
    if (isRetryableStatus(status)) {
      return new RegistryUnavailableError(context,
        `the token service ${realm.host} answered HTTP ${status} after ` +
        `${attempts} attempt${attempts === 1 ? '' : 's'}`, {
          status, attempts,
          hint: 'the token service may be overloaded or down; try again later',
        });
    }
    if (status === 401 || status === 403) {
      return new RegistryAuthenticationError(context,
        this.#hadCredentials
          ? `the token service ${realm.host} refused the credentials for ` +
            `${host} (HTTP ${status})`
          : `the token service ${realm.host} refused anonymous access to ` +
            `${host} (HTTP ${status})`, {
          status,
          hint: this.#hadCredentials
            ? `check the credentials for ${host} (docker login ${host})`
            : `log in to ${host} (docker login ${host})`,
        });
    }
    return new RegistryAuthenticationError(context,
      `the token service ${realm.host} answered HTTP ${status}`, { status });
  }

  async #credentials(): Promise<Credentials | undefined> {
    const credentials = await this.#options.credentials(this.#host);
    this.#hadCredentials = credentials !== undefined;
    return credentials;
  }

  #basicHeader(): Promise<string | undefined> {
    this.#basic ??= this.#credentials().then((credentials) =>
      credentials && 'username' in credentials
        ? 'Basic ' + Buffer.from(
          `${credentials.username}:${credentials.password}`).toString('base64')
        : undefined);
    return this.#basic;
  }

  /** The realm as a URL; never plain HTTP for an HTTPS registry. */
  #checkRealm(realm: string, context: RegistryErrorContext): URL {
    let url: URL;
    try {
      url = new URL(realm);
    } catch (error) {
      throw new RegistryAuthenticationError(context,
        `${this.#host} named an invalid token realm`, { cause: error });
    }

    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new RegistryAuthenticationError(context,
        `${this.#host} named a token realm that is not HTTP(S)`);
    }
    if (url.protocol === 'http:' && this.#options.endpoint.scheme === 'https') {
      throw new RegistryAuthenticationError(context,
        `${this.#host} sends credentials to a plain-HTTP token service ` +
        `(${url.host}); refusing`, {
          hint: 'a registry reached over HTTPS must use an HTTPS realm',
        });
    }
    return url;
  }
}

/**
 * Waits for `promise` until `signal` fires, then fails as this request's
 * interruption, whatever becomes of the promise.
 */
function untilAborted<T>(promise: Promise<T>, context: RegistryErrorContext,
  signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) {
    return Promise.reject(new RegistryInterruptedError(context, signal.reason));
  }

  return new Promise<T>((resolve, reject) => {
    const onAbort = () =>
      reject(new RegistryInterruptedError(context, signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject)
      .finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** One cache key per set of scopes, whatever their order. */
function scopeKey(scopes: readonly string[]): string {
  return [...scopes].sort().join(' ');
}

interface TokenRequest {
  url: URL;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
}

/** The token request: GET with Basic credentials, or an OAuth2 POST. */
function tokenRequest(realm: URL, service: string | undefined,
  scopes: readonly string[], credentials: Credentials | undefined,
  clientId: string): TokenRequest {
  if (credentials && 'identityToken' in credentials) {
    const form = new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: credentials.identityToken,
      client_id: clientId,
    });
    if (service) form.set('service', service);
    if (scopes.length > 0) form.set('scope', scopes.join(' '));

    return {
      url: realm, method: 'POST', body: form.toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    };
  }

  const url = new URL(realm);
  if (service) url.searchParams.set('service', service);
  for (const scope of scopes) url.searchParams.append('scope', scope);

  const headers: Record<string, string> = {};
  if (credentials) {
    url.searchParams.set('account', credentials.username);
    headers.authorization = 'Basic ' + Buffer.from(
      `${credentials.username}:${credentials.password}`).toString('base64');
  }
  return { url, method: 'GET', headers };
}
