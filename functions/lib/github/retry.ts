// Retries of GitHub requests, one request at a time, so a page of a long
// listing that meets a rate limit or a 502 is asked again alone.

import { setTimeout as sleep } from 'node:timers/promises';

import type { Octokit } from '@octokit/rest';

import { isHttpError, isRateLimited, isTransient, requestedWaitMs }
  from './errors.js';
import type { ListingLogger } from './types.js';

export interface RetrySettings {
  retries: number;
  retryDelayMs: number;
  maxRetryWaitMs: number;
  logger?: ListingLogger;
  signal?: AbortSignal;
}

/** GitHub asks for at least a minute after a secondary rate limit that
 * names no time. */
const SECONDARY_LIMIT_WAIT_MS = 60_000;

/** How long to wait before attempt `attempt + 1`, or undefined to give up. */
export function retryWait(error: unknown, attempt: number,
  settings: RetrySettings): number | undefined {
  if (!isTransient(error) || attempt >= settings.retries) return undefined;

  if (isHttpError(error) && error.response !== undefined) {
    const requested = requestedWaitMs(error);
    const wait = requested
      ?? (isRateLimited(error) ? SECONDARY_LIMIT_WAIT_MS : undefined);

    // a limit that resets later than we are willing to wait fails now
    if (wait !== undefined) {
      return wait <= settings.maxRetryWaitMs ? wait : undefined;
    }
  }

  const backoff = settings.retryDelayMs * 2 ** attempt;

  return Math.round(backoff / 2 + Math.random() * backoff / 2);
}

/** Makes every request of `octokit` retry transient failures. */
export function installRetries(octokit: Octokit,
  settings: RetrySettings): void {
  octokit.hook.wrap('request', async (request, options) => {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await request(options);
      } catch (error) {
        const wait = retryWait(error, attempt, settings);
        if (wait === undefined) throw error;

        settings.logger?.debug('retrying a GitHub request', {
          method: options.method, url: options.url, attempt: attempt + 1,
          status: isHttpError(error) ? error.status : undefined,
          waitMs: wait,
        });
        await sleep(wait, undefined, { signal: settings.signal });
      }
    }
  });
}
