// Retries of transient faults: network errors, 5xx and 429.
//
// Backoff doubles from a base delay with jitter, so that many copies failing
// together do not come back together; a `Retry-After` the server sends wins
// over the computed delay. Attempts are bounded, and a server asking to wait
// longer than we are willing to is taken at its word: we give up at once and
// let the caller (the workflow) retry much later.

import { setTimeout as delay } from 'node:timers/promises';

import { BackupError } from '../errors.js';
import {
  RegistryInterruptedError, RegistryRequestError, RegistryUnavailableError,
  type RegistryErrorContext,
} from './errors.js';
import type { Logger } from './types.js';

export interface RetryOptions {
  /** Requests per operation, the first included. @default 5 */
  attempts?: number;
  /** Delay before the first retry, doubled each time. @default 250 */
  baseDelayMs?: number;
  /** Longest computed delay. @default 15000 */
  maxDelayMs?: number;
  /**
   * Longest `Retry-After` we wait for; beyond it we give up at once.
   * @default 120000
   */
  maxRetryAfterMs?: number;
}

export type ResolvedRetryOptions = Required<RetryOptions>;

export function resolveRetryOptions(options: RetryOptions = {}):
  ResolvedRetryOptions {
  return {
    attempts: Math.max(1, options.attempts ?? 5),
    baseDelayMs: options.baseDelayMs ?? 250,
    maxDelayMs: options.maxDelayMs ?? 15_000,
    maxRetryAfterMs: options.maxRetryAfterMs ?? 120_000,
  };
}

/** 5xx (but 501, which will not change), 408 and 429 are worth retrying. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 ||
    (status >= 500 && status !== 501 && status < 600);
}

/** Milliseconds a `Retry-After` value asks for (seconds or an HTTP date). */
export function parseRetryAfter(value: string | null,
  now = Date.now()): number | undefined {
  if (!value) return undefined;

  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;

  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** The backoff before retry number `retry` (1-based), with jitter. */
export function backoffDelay(options: ResolvedRetryOptions,
  retry: number): number {
  const ceiling = Math.min(options.maxDelayMs,
    options.baseDelayMs * 2 ** (retry - 1));
  return Math.round(ceiling * (0.5 + Math.random() / 2));
}

/** The error code of a failed fetch (`ECONNREFUSED`, ...), if it has one. */
export function networkErrorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; current && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Errors that say where nothing listens, or no such host. */
const UNREACHABLE = new Set([
  'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH',
  'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT',
]);

/** TLS failures, which retrying does not cure. */
function isTlsFailure(code: string | undefined): boolean {
  return !!code && (/^(ERR_SSL|ERR_TLS|CERT_)/.test(code) ||
    code === 'EPROTO' || code.includes('SELF_SIGNED') ||
    code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
}

/** True when `error` comes from the caller's abort signal. */
export function isAbort(error: unknown, signal?: AbortSignal): boolean {
  return !!signal?.aborted ||
    (error instanceof Error && error.name === 'AbortError');
}

/** Waits, unless the signal fires first. */
export async function sleep(ms: number, signal?: AbortSignal):
  Promise<void> {
  await delay(ms, undefined, { signal });
}

/** The error for a network failure that outlived its retries. */
export function networkError(context: RegistryErrorContext, error: unknown,
  attempts: number): BackupError {
  const code = networkErrorCode(error);
  if (isTlsFailure(code)) {
    return new RegistryRequestError(context,
      `TLS connection to ${context.registry} failed (${code})`, {
        cause: error,
        hint: `if ${context.registry} serves plain HTTP, write ` +
          `http://${context.registry}`,
      });
  }

  const what = code && UNREACHABLE.has(code)
    ? `${context.registry} is unreachable (${code})`
    : `the connection to ${context.registry} failed ` +
      `(${code ?? errorText(error)})`;
  return new RegistryUnavailableError(context,
    `${what} after ${attempts} attempt${attempts === 1 ? '' : 's'}`, {
      cause: error,
      attempts,
      hint: `check that ${context.registry} is the registry's address and ` +
        'that it is up and reachable from here',
    });
}

/**
 * An error `withRetries` threw, built again for another request's context:
 * the same failure, naming that request. Anything else is returned as is.
 */
export function retryErrorFor(error: unknown,
  context: RegistryErrorContext): unknown {
  if (error instanceof RegistryInterruptedError) {
    return new RegistryInterruptedError(context, error.cause);
  }
  if (error instanceof RegistryUnavailableError) {
    return networkError(context, error.cause, error.attempts);
  }
  if (error instanceof RegistryRequestError) {
    return networkError(context, error.cause, 1);
  }
  return error;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export interface RetryScope {
  options: ResolvedRetryOptions;
  context: RegistryErrorContext;
  signal?: AbortSignal;
  logger?: Logger;
  /** Send once only (a body that cannot be sent again). */
  once?: boolean;
}

/** The last response, and how many requests it took. */
export interface Retried {
  response: Response;
  attempts: number;
}

/**
 * Calls `send` until it answers something other than a retryable status,
 * retrying network errors and retryable statuses with backoff. Returns the
 * last response, whatever its status, when retries run out on a status; the
 * caller turns statuses into errors. Our own errors thrown by `send` (an
 * authentication failure) pass through untouched.
 */
export async function withRetries(scope: RetryScope,
  send: () => Promise<Response>): Promise<Retried> {
  const { options, context, signal, logger } = scope;
  const attempts = scope.once ? 1 : options.attempts;

  for (let attempt = 1; ; attempt++) {
    let response: Response;
    try {
      response = await send();
    } catch (error) {
      if (error instanceof BackupError) throw error;
      if (isAbort(error, signal)) {
        throw new RegistryInterruptedError(context, error);
      }
      if (attempt >= attempts || isTlsFailure(networkErrorCode(error))) {
        throw networkError(context, error, attempt);
      }

      const wait = backoffDelay(options, attempt);
      logger?.debug('retrying after a network error', {
        registry: context.registry, operation: context.operation,
        code: networkErrorCode(error), attempt, delayMs: wait,
      });
      await pause(wait, scope);
      continue;
    }

    if (!isRetryableStatus(response.status) || attempt >= attempts) {
      return { response, attempts: attempt };
    }

    // the server's Retry-After wins; one asking for too long ends it here
    const asked = parseRetryAfter(response.headers.get('retry-after'));
    if (asked !== undefined && asked > options.maxRetryAfterMs) {
      return { response, attempts: attempt };
    }

    const wait = asked ?? backoffDelay(options, attempt);
    logger?.debug('retrying after a transient answer', {
      registry: context.registry, operation: context.operation,
      status: response.status, attempt, delayMs: wait,
    });
    await discard(response);
    await pause(wait, scope);
  }
}

async function pause(ms: number, scope: RetryScope): Promise<void> {
  try {
    await sleep(ms, scope.signal);
  } catch (error) {
    throw new RegistryInterruptedError(scope.context, error);
  }
}

/** Frees a response's connection when its body is not wanted. */
export async function discard(response: Response): Promise<void> {
  try {
    await response.body?.cancel();
  } catch {
    // a body that fails while being thrown away needs nothing more
  }
}
