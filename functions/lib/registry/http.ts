// The HTTP layer under the resource methods: one registry, its auth state,
// retries and redirects, and the mapping of answers to errors.
//
// Credentials go only to the registry's own origin. Redirects are followed
// here, by hand, so that a blob download sent to a storage host (GHCR's
// CDN, S3) carries no Authorization header; fetch's own redirect handling
// would decide that for us.

import {
  request as httpRequest, type IncomingHttpHeaders,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { BackupError } from '../errors.js';
import { Authenticator, type Authorization } from './auth.js';
import {
  RegistryAuthenticationError, RegistryNotFoundError, RegistryRequestError,
  RegistryUnavailableError, parseErrorBody, type RegistryErrorContext,
} from './errors.js';
import { registryOrigin } from './reference.js';
import {
  discard, isRetryableStatus, resolveRetryOptions, withRetries,
  type ResolvedRetryOptions, type RetryOptions,
} from './retry.js';
import type { CredentialProvider, Logger, RegistryEndpoint } from './types.js';

export type HttpMethod = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

export interface RegistryRequest {
  method: HttpMethod;
  /** A path with its query (`/v2/...`), or an absolute URL (a Location). */
  url: string | URL;
  /** Token scopes the request needs (`repository:NAME:pull`). */
  scopes: readonly string[];
  context: RegistryErrorContext;
  headers?: Record<string, string>;
  /**
   * Makes the body, once per attempt: a stream cannot be sent twice, so a
   * request with a stream body is sent `once` and the caller starts over.
   */
  body?: () => Uint8Array | string | Readable;
  /** Statuses handed back to the caller instead of thrown (e.g. 404). */
  allow?: readonly number[];
  /** One attempt only: no retry of network errors, 5xx, 429 or 401. */
  once?: boolean;
  /** Follow redirects. @default true */
  redirects?: boolean;
  signal?: AbortSignal;
}

export interface RegistryHttpOptions {
  endpoint: RegistryEndpoint;
  credentials: CredentialProvider;
  retry?: RetryOptions;
  logger?: Logger;
  /** @default 'ghcr-backup' */
  userAgent?: string;
}

/** Redirects followed per request before giving up. */
const MAX_REDIRECTS = 10;

/** A streamed upload with no progress for this long is given up. */
const IDLE_TIMEOUT_MS = 300_000;

/** Error bodies read for their message, at most. */
const ERROR_BODY_LIMIT = 8192;

export class RegistryHttp {
  readonly endpoint: RegistryEndpoint;
  /** `https://host[:port]`: the only origin that sees credentials. */
  readonly origin: string;
  readonly auth: Authenticator;
  readonly retry: ResolvedRetryOptions;
  readonly #logger?: Logger;
  readonly #userAgent: string;

  constructor(options: RegistryHttpOptions) {
    this.endpoint = options.endpoint;
    this.origin = registryOrigin(options.endpoint);
    this.retry = resolveRetryOptions(options.retry);
    this.#logger = options.logger;
    this.#userAgent = options.userAgent ?? 'ghcr-backup';
    this.auth = new Authenticator({
      endpoint: options.endpoint,
      credentials: options.credentials,
      retry: this.retry,
      logger: options.logger,
    });
  }

  /** A Location header (relative or absolute) resolved against `base`. */
  resolve(location: string, base: string | URL = this.origin): URL {
    const url = new URL(location, base);

    // a registry behind a TLS proxy may name itself http://; keep HTTPS
    if (url.host === this.endpoint.host &&
      url.protocol !== `${this.endpoint.scheme}:`) {
      url.protocol = `${this.endpoint.scheme}:`;
    }
    return url;
  }

  /**
   * Sends a request: authenticates by challenge, retries transient faults,
   * follows redirects (without credentials to other hosts). Returns the
   * response when it is 2xx or in `allow`; throws the mapped error else.
   */
  async send(request: RegistryRequest): Promise<Response> {
    const { response, attempts } = await withRetries({
      options: this.retry,
      context: request.context,
      signal: request.signal,
      logger: this.#logger,
      once: request.once,
    }, () => this.#authenticated(request));

    const redirect = request.redirects === false &&
      isRedirect(response.status);
    if (response.ok || redirect || request.allow?.includes(response.status)) {
      return response;
    }
    throw await this.error(response, request, attempts);
  }

  /** The error for a response the caller did not expect. */
  async error(response: Response, request: RegistryRequest,
    attempts = 1): Promise<BackupError> {
    const { context } = request;
    const status = response.status;
    const text = request.method === 'HEAD' ? '' : await readText(response);
    const { code, message } = parseErrorBody(text);
    const detail = `HTTP ${status}${code ? ` ${code}` : ''}` +
      `${message ? `: ${message}` : ''}`;
    const host = new URL(response.url || this.origin).host;
    const where = host === this.endpoint.host ? '' : ` (storage host ${host})`;

    if (status === 401 && !where) {
      return this.auth.failure(response.headers.get('www-authenticate'),
        context, status);
    }
    if (status === 401 || status === 403) {
      return new RegistryAuthenticationError(context,
        `access denied${where} (${detail})`, {
          status, code,
          hint: `check that the credentials for ${this.endpoint.host} may ` +
            `${request.method === 'GET' || request.method === 'HEAD'
              ? 'pull from' : 'push to'} ` +
            `${context.repository ?? 'this repository'}`,
        });
    }
    if (status === 404) {
      return new RegistryNotFoundError(context,
        `not found${where} (${detail})`, { status, code });
    }
    if (isRetryableStatus(status)) {
      return new RegistryUnavailableError(context,
        `${this.endpoint.host}${where} answered ${detail} after ` +
        `${attempts} attempt${attempts === 1 ? '' : 's'}`, {
          status, code, attempts,
          hint: 'the registry is overloaded or failing; try again later',
        });
    }
    return new RegistryRequestError(context,
      `refused${where} (${detail})`, { status, code });
  }

  /** One attempt: with credentials, answering one 401 challenge. */
  async #authenticated(request: RegistryRequest): Promise<Response> {
    const { context, signal } = request;
    let authorization = await this.auth.authorization(request.scopes,
      context, signal);
    const response = await this.#follow(request, authorization);
    if (response.status !== 401 ||
      new URL(response.url).origin !== this.origin) {
      return response;
    }

    // a body sent once cannot be sent again: drop what was refused, so the
    // caller's next attempt starts with fresh credentials
    if (request.once) {
      await this.auth.challenge(response.headers.get('www-authenticate'),
        authorization, context).catch(() => undefined);
      return response;
    }

    // the challenge says how to authenticate; answer it once
    await discard(response);
    await this.auth.challenge(response.headers.get('www-authenticate'),
      authorization, context);
    authorization = await this.auth.authorization(request.scopes, context,
      signal);
    return this.#follow(request, authorization);
  }

  /** Sends the request and follows its redirects, hop by hop. */
  async #follow(request: RegistryRequest, authorization: Authorization):
    Promise<Response> {
    let url = typeof request.url === 'string'
      ? this.resolve(request.url) : request.url;
    let method: HttpMethod = request.method;
    let body = request.body;

    for (let hop = 0; ; hop++) {
      const ours = url.origin === this.origin;
      const headers: Record<string, string> = {
        'user-agent': this.#userAgent,
        // the bytes as stored: a decompressed blob has another digest
        'accept-encoding': 'identity',
        ...request.headers,
      };
      if (ours && authorization.header) {
        headers.authorization = authorization.header;
      }

      const content = body?.();
      const response = content instanceof Readable
        ? await sendStreamed(url, method, headers, content, request.signal)
        : await fetch(url, {
          method, headers, body: content, redirect: 'manual',
          signal: request.signal,
        });
      const location = response.headers.get('location');
      if (!isRedirect(response.status) || !location ||
        request.redirects === false) {
        return response;
      }

      await discard(response);
      if (hop >= MAX_REDIRECTS) {
        throw new RegistryRequestError(request.context,
          `more than ${MAX_REDIRECTS} redirects`);
      }

      const next = new URL(location, url);
      this.#logger?.debug('following a redirect', {
        registry: this.endpoint.host, status: response.status,
        to: next.host, credentials: next.origin === this.origin,
      });
      url = next;
      if (response.status === 303) {
        method = 'GET';
        body = undefined;
      }
    }
  }
}

/**
 * Sends a streamed body with node:http, which keeps only a few chunks in
 * flight: fetch (undici in Node 22) holds on to every chunk of a streamed
 * request body until the request ends, a whole blob's worth of memory.
 * The answer is handed back as a fetch Response, like every other.
 */
function sendStreamed(url: URL, method: HttpMethod,
  headers: Record<string, string>, body: Readable, signal?: AbortSignal):
  Promise<Response> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const request = send(url, { method, headers, signal });
  let sent = false;

  // a registry that stops reading would hold the upload forever
  request.setTimeout(IDLE_TIMEOUT_MS, () => {
    request.destroy(Object.assign(
      new Error(`no progress for ${IDLE_TIMEOUT_MS / 1000} s`),
      { code: 'ESTALLED' }));
  });

  return new Promise<Response>((resolve, reject) => {
    request.once('error', reject);
    pipeline(body, request).then(() => {
      sent = true;
    }, reject);

    request.once('response', (incoming) => {
      // answered before the body was all sent (a refusal): stop sending,
      // and close the connection once the answer is read, as its request
      // will never be complete
      if (!sent) {
        body.unpipe(request);
        body.destroy();
        incoming.once('close', () => request.destroy());
      }

      const status = incoming.statusCode ?? 0;
      const empty = method === 'HEAD' || status === 204 || status === 205 ||
        status === 304;
      if (empty) incoming.resume();

      const response = new Response(empty ? null
        : Readable.toWeb(incoming) as ReadableStream<Uint8Array>,
      { status, headers: headersOf(incoming.headers) });
      Object.defineProperty(response, 'url', { value: url.href });
      resolve(response);
    });
  });
}

function headersOf(incoming: IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) {
      headers.append(name, item);
    }
  }
  return headers;
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 ||
    status === 307 || status === 308;
}

/** The start of a body, for error messages; the rest is discarded. */
async function readText(response: Response): Promise<string> {
  if (!response.body) return '';

  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  try {
    while (length < ERROR_BODY_LIMIT) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      length += value.length;
    }
  } catch {
    // a broken error body still leaves the status to report
  } finally {
    reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).toString('utf8', 0, ERROR_BODY_LIMIT);
}
