// An HTTP proxy in front of a test registry, to see what a client sends
// and to make the registry misbehave on purpose: answer 5xx/429, cut a
// blob download short, or redirect blob downloads to a separate storage
// server as GHCR does.

import {
  Agent, createServer, request as httpRequest, type IncomingHttpHeaders,
  type IncomingMessage, type ServerResponse,
} from 'node:http';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

import { listenOnLoopback, onStopAll, stopOnce } from './process.js';
import { registryFetch } from './raw.js';
import type { TestRegistry } from './registry.js';

/** One request as the proxy or the storage server received it. */
export interface ProxyRequestRecord {
  method: string;
  /** Path and query as sent. */
  url: string;
  headers: IncomingHttpHeaders;
  /** Whether an Authorization header came with it. */
  authorization: boolean;
  /** The status answered; 0 until the answer started. */
  status: number;
  /** Who answered: the registry, an injected fault, a redirect, a cut
   * body, or an intercept hook. */
  outcome: 'forwarded' | 'fault' | 'redirect' | 'cut' | 'intercepted'
  | 'storage';
}

export interface ProxyRequestInfo {
  method: string;
  /** Path without the query. */
  path: string;
  url: string;
  headers: IncomingHttpHeaders;
}

export type RequestMatcher = (request: ProxyRequestInfo) => boolean;

export interface FaultOptions {
  /** Which requests fail; default every request. */
  match?: RequestMatcher;
  /** Default 503. */
  status?: number;
  /** A Retry-After value: seconds or an HTTP date. */
  retryAfter?: string;
}

export interface TestProxy {
  /** `127.0.0.1:PORT` of the proxy: use it as the registry's host. */
  readonly host: string;
  readonly url: string;
  readonly port: number;
  /** The registry's own, so the proxy can stand in for it. */
  readonly credentials: TestRegistry['credentials'];
  readonly auth: TestRegistry['auth'];
  readonly registry: TestRegistry;
  /** `http://127.0.0.1:PORT` of the storage server blob GETs are
   * redirected to. */
  readonly storageUrl: string;
  /** Requests the proxy received, in arrival order. */
  requests(): ProxyRequestRecord[];
  /** Requests the storage server received. */
  storageRequests(): ProxyRequestRecord[];
  resetRequests(): void;
  /** The next `count` matching requests get `status` (503 by default)
   * without reaching the registry. */
  failNext(count: number, options?: FaultOptions): void;
  /** The next blob body served (by proxy or storage) is cut after
   * `afterBytes` bytes by destroying the connection. */
  cutNextBlob(afterBytes: number, options?: { digest?: string }): void;
  /** Blob GETs the registry would serve (200 or 206) are answered 307 to
   * the storage server instead. */
  redirectBlobs(enabled: boolean): void;
  /** A hook that sees every request first; return true when it answered. */
  intercept(hook?: (req: IncomingMessage, res: ServerResponse) =>
    boolean): void;
  /** Drops every pending fault. */
  clearFaults(): void;
  stop(): Promise<void>;
}

export interface ProxyOptions {
  /** Start with blob redirects on; default false. */
  redirectBlobs?: boolean;
}

interface Fault {
  left: number;
  match: RequestMatcher;
  status: number;
  retryAfter?: string;
}

interface Cut {
  afterBytes: number;
  digest?: string;
}

const BLOB_GET = /^\/v2\/(.+)\/blobs\/(sha256:[a-f0-9]{64})$/;
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection',
  'upgrade', 'te', 'trailer'];

/** Starts a proxy (and its storage server) in front of `registry`. */
export async function startProxy(
  registry: TestRegistry, options: ProxyOptions = {},
): Promise<TestProxy> {
  const agent = new Agent({ keepAlive: true });
  let records: ProxyRequestRecord[] = [];
  let storageRecords: ProxyRequestRecord[] = [];
  let faults: Fault[] = [];
  let cuts: Cut[] = [];
  let redirect = options.redirectBlobs ?? false;
  let hook: ((req: IncomingMessage, res: ServerResponse) => boolean)
    | undefined;
  const secret = randomBytes(8).toString('hex');

  const proxy = createServer((req, res) => {
    const record = recordOf(req, 'forwarded');
    records.push(record);
    res.on('finish', () => { record.status ||= res.statusCode; });
    res.on('close', () => { record.status ||= res.statusCode; });
    const info = infoOf(req);

    if (hook?.(req, res)) {
      record.outcome = 'intercepted';
      return;
    }

    const fault = faults.find((f) => f.left > 0 && f.match(info));
    if (fault) {
      fault.left--;
      faults = faults.filter((f) => f.left > 0);
      record.outcome = 'fault';
      req.resume();
      res.writeHead(fault.status, {
        'content-type': 'application/json',
        ...(fault.retryAfter ? { 'retry-after': fault.retryAfter } : {}),
      });
      res.end(JSON.stringify({ errors: [{ code: 'UNAVAILABLE',
        message: 'injected by the test proxy' }] }));
      return;
    }

    forward(req, res, record, info);
  });

  const forward = (
    req: IncomingMessage, res: ServerResponse,
    record: ProxyRequestRecord, info: ProxyRequestInfo,
  ) => {
    const headers = { ...req.headers };
    for (const name of HOP_BY_HOP) delete headers[name];

    const upstream = httpRequest({
      host: '127.0.0.1',
      port: registry.port,
      method: req.method,
      path: req.url,
      headers,
      agent,
    }, (answer) => {
      const out = rewriteHeaders(answer.headers);
      const blob = BLOB_GET.exec(info.path);
      const isBlobGet = req.method === 'GET' && blob !== null;

      // GHCR's way: authorised at the registry, served from storage
      const served = answer.statusCode === 200 || answer.statusCode === 206;
      if (isBlobGet && redirect && served) {
        answer.destroy();
        record.outcome = 'redirect';
        const location = `${storageUrl}/storage/${blob[1]}/${blob[2]}` +
          `?expires=${Date.now() + 600_000}&signature=${secret}`;
        res.writeHead(307, { location, 'content-length': '0' });
        res.end();
        return;
      }

      res.writeHead(answer.statusCode ?? 502, out);
      const ok = (answer.statusCode ?? 0) < 300;
      const cut = isBlobGet && ok ? takeCut(blob[2]!) : undefined;
      if (cut) {
        record.outcome = 'cut';
        pipeThenCut(answer, res, cut.afterBytes);
      } else {
        answer.pipe(res);
      }
    });
    upstream.on('error', (error) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(String(error));
    });
    req.pipe(upstream);
  };

  const takeCut = (digest: string): Cut | undefined => {
    const cut = cuts.find((c) => !c.digest || c.digest === digest);
    if (cut) cuts = cuts.filter((c) => c !== cut);
    return cut;
  };

  const rewriteHeaders = (headers: IncomingHttpHeaders) => {
    const out: IncomingHttpHeaders = { ...headers };
    for (const name of HOP_BY_HOP) delete out[name];
    const location = out.location;
    if (typeof location === 'string') {
      out.location = location.replace(registry.url, `http://${host}`);
    }
    return out;
  };

  // the storage server: a signed-URL host that must never see credentials
  const storage = createServer((req, res) => {
    const record = recordOf(req, 'storage');
    storageRecords.push(record);
    res.on('finish', () => { record.status ||= res.statusCode; });
    res.on('close', () => { record.status ||= res.statusCode; });
    serveStorage(req, res, record).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(error));
    });
  });

  const serveStorage = async (
    req: IncomingMessage, res: ServerResponse, record: ProxyRequestRecord,
  ) => {
    const url = new URL(req.url ?? '/', 'http://storage');
    const match = /^\/storage\/(.+)\/(sha256:[a-f0-9]{64})$/
      .exec(url.pathname);
    if (!match || url.searchParams.get('signature') !== secret) {
      res.writeHead(403, { 'content-type': 'text/plain' });
      res.end('bad or unsigned storage URL');
      return;
    }

    const range = req.headers.range;
    const answer = await registryFetch(registry,
      `/v2/${match[1]}/blobs/${match[2]}`, {
        method: req.method === 'HEAD' ? 'HEAD' : 'GET',
        headers: range ? { range } : {},
        actions: 'pull',
      });

    const headers: Record<string, string> = {};
    for (const name of ['content-length', 'content-range',
      'accept-ranges', 'docker-content-digest', 'etag']) {
      const value = answer.headers.get(name);
      if (value !== null) headers[name] = value;
    }
    headers['content-type'] = 'application/octet-stream';
    res.writeHead(answer.status, headers);
    if (!answer.body || req.method === 'HEAD') {
      res.end();
      return;
    }

    const body = Readable.fromWeb(
      answer.body as import('node:stream/web').ReadableStream);
    const cut = answer.status < 300 ? takeCut(match[2]!) : undefined;
    if (cut) {
      record.outcome = 'cut';
      pipeThenCut(body, res, cut.afterBytes);
    } else {
      body.pipe(res);
    }
  };

  const proxyPort = await listenOnLoopback(proxy);
  const storagePort = await listenOnLoopback(storage);
  const host = `127.0.0.1:${proxyPort}`;
  const storageUrl = `http://127.0.0.1:${storagePort}`;

  const stop = stopOnce(async () => {
    unregister();
    for (const server of [proxy, storage]) server.closeAllConnections();
    await Promise.all([proxy, storage].map((server) =>
      new Promise<void>((done) => server.close(() => done()))));
    agent.destroy();
  });
  const unregister = onStopAll(stop);

  return {
    host,
    url: `http://${host}`,
    port: proxyPort,
    credentials: registry.credentials,
    auth: registry.auth,
    registry,
    storageUrl,
    requests: () => records.map((r) => ({ ...r })),
    storageRequests: () => storageRecords.map((r) => ({ ...r })),
    resetRequests: () => {
      records = [];
      storageRecords = [];
    },
    failNext: (count, fault = {}) => {
      faults.push({
        left: count,
        match: fault.match ?? (() => true),
        status: fault.status ?? 503,
        retryAfter: fault.retryAfter,
      });
    },
    cutNextBlob: (afterBytes, cut = {}) => {
      cuts.push({ afterBytes, digest: cut.digest });
    },
    redirectBlobs: (enabled) => { redirect = enabled; },
    intercept: (next) => { hook = next; },
    clearFaults: () => {
      faults = [];
      cuts = [];
    },
    stop,
  };
}

/** Matches blob GETs (optionally of one digest). */
export function blobGets(digest?: string): RequestMatcher {
  return (r) => r.method === 'GET' && BLOB_GET.test(r.path) &&
    (!digest || r.path.endsWith(`/${digest}`));
}

/** Matches requests by method and a path pattern. */
export function requestsTo(method: string, path: RegExp): RequestMatcher {
  return (r) => r.method === method && path.test(r.path);
}

function recordOf(
  req: IncomingMessage, outcome: ProxyRequestRecord['outcome'],
): ProxyRequestRecord {
  return {
    method: req.method ?? 'GET',
    url: req.url ?? '/',
    headers: { ...req.headers },
    authorization: req.headers.authorization !== undefined,
    status: 0,
    outcome,
  };
}

function infoOf(req: IncomingMessage): ProxyRequestInfo {
  const url = req.url ?? '/';
  return {
    method: req.method ?? 'GET',
    path: new URL(url, 'http://proxy').pathname,
    url,
    headers: req.headers,
  };
}

/** Passes `afterBytes` bytes of the body, then kills the connection. */
function pipeThenCut(
  body: Readable, res: ServerResponse, afterBytes: number,
): void {
  let sent = 0;
  body.on('data', (chunk: Buffer) => {
    if (sent >= afterBytes) return;
    const part = chunk.subarray(0, afterBytes - sent);
    sent += part.length;
    res.write(part);
    if (sent >= afterBytes) {
      body.destroy();

      // let the bytes leave before the connection goes
      res.socket?.end(() => res.socket?.destroy());
      setTimeout(() => res.socket?.destroy(), 50).unref();
    }
  });
  body.on('end', () => res.end());
}
