// The HTTP layer under the resource methods: one registry, its auth state,
// retries and redirects, and the mapping of answers to errors.
//
// Credentials go only to the registry's own origin. Redirects are followed
// here, by hand, so that a blob download sent to a storage host (GHCR's
// CDN, S3) carries no Authorization header; fetch's own redirect handling
// would decide that for us.
//
// Small requests go through fetch. Blob bytes, both ways, go through
// node:http on keep-alive agents of this registry's own: a blob download
// through fetch costs a web stream and a promise per chunk, and a streamed
// upload through fetch holds every chunk until the request ends.

import {
  Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders,
  type IncomingMessage,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
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
  /**
   * Send with node:http, for a large body: the answer's body can then be
   * taken as a Node stream by `nodeBody`, without a web stream between.
   * @default false
   */
  streamed?: boolean;
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

/** Bodies up to this size are read to their end when not wanted, so that
 * their connection is kept; larger ones close it. */
const DRAIN_LIMIT = 64 * 1024;

/** Idle keep-alive connections are closed after this long. */
const KEEP_ALIVE_MS = 5000;

export class RegistryHttp {
  readonly endpoint: RegistryEndpoint;
  /** `https://host[:port]`: the only origin that sees credentials. */
  readonly origin: string;
  readonly auth: Authenticator;
  readonly retry: ResolvedRetryOptions;
  readonly #logger?: Logger;
  readonly #userAgent: string;
  #agents?: { http: HttpAgent; https: HttpsAgent };

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
      const response = content instanceof Readable || request.streamed
        ? await sendStreamed(url, method, headers, content, this.#agent(url),
          request.signal)
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

  /** This registry's keep-alive agent for the URL's scheme (a storage
   * host a redirect leads to shares it). */
  #agent(url: URL): HttpAgent {
    this.#agents ??= {
      http: new HttpAgent({ keepAlive: true, timeout: KEEP_ALIVE_MS,
        scheduling: 'lifo' }),
      https: new HttpsAgent({ keepAlive: true, timeout: KEEP_ALIVE_MS,
        scheduling: 'lifo' }),
    };
    return url.protocol === 'https:' ? this.#agents.https : this.#agents.http;
  }
}

/**
 * Sends a request with node:http, which keeps only a few chunks of a
 * streamed body in flight: fetch (undici in Node 22) holds on to every
 * chunk of a streamed request body until the request ends, a whole blob's
 * worth of memory. The answer is handed back as a fetch Response, like
 * every other, whose body stays a Node stream until someone reads it (see
 * `nodeBody`).
 */
function sendStreamed(url: URL, method: HttpMethod,
  headers: Record<string, string>, body: Readable | string | Uint8Array |
  undefined, agent: HttpAgent, signal?: AbortSignal): Promise<Response> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const request = send(url, { method, headers, signal, agent });
  let sent = !(body instanceof Readable);

  // a registry that stops reading or sending would hold us forever
  request.setTimeout(IDLE_TIMEOUT_MS, () => {
    request.destroy(Object.assign(
      new Error(`no progress for ${IDLE_TIMEOUT_MS / 1000} s`),
      { code: 'ESTALLED' }));
  });

  return new Promise<Response>((resolve, reject) => {
    request.once('error', reject);
    if (body instanceof Readable) {
      pipeline(body, request).then(() => {
        sent = true;
      }, reject);
    } else {
      request.end(body);
    }

    request.once('response', (incoming) => {
      // answered before the body was all sent (a refusal): stop sending,
      // and close the connection once the answer is read, as its request
      // will never be complete
      if (!sent && body instanceof Readable) {
        body.unpipe(request);
        body.destroy();
        incoming.once('close', () => request.destroy());
      }

      const status = incoming.statusCode ?? 0;
      const empty = method === 'HEAD' || status === 204 || status === 205 ||
        status === 304;
      if (empty) incoming.resume();

      const response = new Response(empty ? null : lazyBody(incoming),
        { status, headers: headersOf(incoming.headers) });
      Object.defineProperty(response, 'url', { value: url.href });
      resolve(response);
    });
  });
}

/** The Node streams under the web bodies made by `lazyBody`, until one is
 * taken or the web body is read. */
const nodeStreams = new WeakMap<ReadableStream<Uint8Array>, Readable>();

/**
 * A web stream over an answer that reads nothing until it is read: the
 * answer can still be taken whole as a Node stream (`nodeBody`), and one
 * cancelled unread frees its connection.
 */
function lazyBody(incoming: IncomingMessage): ReadableStream<Uint8Array> {
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  const body = new ReadableStream<Uint8Array>({
    pull: async (controller) => {
      nodeStreams.delete(body);
      reader ??= (Readable.toWeb(incoming) as ReadableStream<Uint8Array>)
        .getReader();
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: async (reason) => {
      if (reader) {
        await reader.cancel(reason);
      } else if (nodeStreams.delete(body)) {
        release(incoming);
      }
    },
  }, { highWaterMark: 0 });
  nodeStreams.set(body, incoming);
  return body;
}

/**
 * A body as a Node stream: the answer itself when the body came from a
 * streamed request and was not read yet (no web stream between), else a
 * Node stream reading the web stream.
 */
export function nodeBody(body: ReadableStream<Uint8Array>): Readable {
  const incoming = nodeStreams.get(body);
  if (incoming && !body.locked) {
    nodeStreams.delete(body);
    return incoming;
  }
  return Readable.fromWeb(
    body as import('node:stream/web').ReadableStream<Uint8Array>);
}

/**
 * Lets go of an answer's body that is not wanted: a small one is read to
 * its end so its connection is kept, a larger one closes it.
 */
export function release(incoming: Readable): void {
  if (incoming.readableEnded || incoming.destroyed) return;

  const length = Number((incoming as IncomingMessage).headers?.[
    'content-length'] ?? Number.NaN);
  if (length <= DRAIN_LIMIT) {
    incoming.on('error', () => undefined);
    incoming.resume();
  } else {
    incoming.destroy();
  }
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
