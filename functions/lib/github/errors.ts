// GitHub's answers, turned into the error families the workflow catches by
// name. Messages name the API and the owner, say what to do, and never carry
// the token: octokit already redacts it from the request it keeps, and the
// text we add goes through `redact` as well.

import {
  AuthenticationError, BackupError, InterruptedError, InvalidInputError,
  NotFoundError, TransientError, redact,
} from '../errors.js';

/**
 * The shape of octokit's RequestError, read by duck typing so that only
 * `@octokit/rest` is a dependency. A network failure has no response.
 */
export interface HttpError extends Error {
  name: 'HttpError';
  status: number;
  response?: { headers: Record<string, unknown>; data: unknown };
}

export function isHttpError(error: unknown): error is HttpError {
  return error instanceof Error && error.name === 'HttpError'
    && typeof (error as { status?: unknown }).status === 'number';
}

/** Which listing a request belonged to, to say what failed. */
export interface RequestContext {
  /** The REST API root, e.g. https://api.github.com. */
  api: string;
  ownerKind: 'org' | 'user';
  owner: string;
  /** Set when the request listed one package's versions. */
  packageName?: string;
}

/** Scopes that include reading packages. */
const PACKAGE_READING_SCOPES = ['read:packages', 'write:packages',
  'delete:packages'];

function header(error: HttpError, name: string): string | undefined {
  const value = error.response?.headers[name];

  return value === undefined ? undefined : String(value);
}

/** GitHub's own words about the failure, without its documentation link. */
function githubMessage(error: HttpError): string {
  const data = error.response?.data as { message?: unknown } | undefined;
  const message = typeof data?.message === 'string'
    ? data.message
    : error.message;

  return redact(message);
}

/** An answer that says the request was throttled, not refused. */
export function isRateLimited(error: HttpError): boolean {
  if (error.status === 429) return true;
  if (error.status !== 403) return false;

  return header(error, 'x-ratelimit-remaining') === '0'
    || header(error, 'retry-after') !== undefined
    || /rate limit/i.test(githubMessage(error));
}

/** A failure a later attempt may not meet: network, 5xx or throttling. */
export function isTransient(error: unknown): boolean {
  if (!isHttpError(error)) return false;

  // octokit reports a network failure as a 500 with no response
  if (error.response === undefined) return true;

  return error.status >= 500 || isRateLimited(error);
}

/**
 * How long GitHub asks us to wait before retrying, in ms, when it says so
 * (`retry-after` in seconds, or the epoch second the rate limit resets).
 */
export function requestedWaitMs(error: HttpError,
  now = Date.now()): number | undefined {
  const retryAfter = header(error, 'retry-after');
  if (retryAfter !== undefined && /^\d+$/.test(retryAfter)) {
    return Number(retryAfter) * 1000;
  }

  const reset = header(error, 'x-ratelimit-reset');
  if (reset !== undefined && /^\d+$/.test(reset)
    && header(error, 'x-ratelimit-remaining') === '0') {
    return Math.max(0, Number(reset) * 1000 - now);
  }

  return undefined;
}

function lacksPackageScope(error: HttpError): boolean {
  const granted = header(error, 'x-oauth-scopes');
  if (granted !== undefined) {
    const scopes = granted.split(',').map((scope) => scope.trim());
    if (!scopes.some((scope) => PACKAGE_READING_SCOPES.includes(scope))) {
      return true;
    }
  }

  return /read:packages/.test(githubMessage(error));
}

function ownerWords(context: RequestContext): string {
  return context.ownerKind === 'org'
    ? `organisation ${context.owner}`
    : `user ${context.owner}`;
}

/** The error to throw for anything a GitHub request threw. */
export function toListingError(error: unknown,
  context: RequestContext): BackupError {
  if (error instanceof BackupError) return error;

  const what = context.packageName === undefined
    ? `the container packages of ${ownerWords(context)}`
    : `the versions of package ${context.packageName} of `
      + ownerWords(context);

  if (error instanceof Error && error.name === 'AbortError') {
    return new InterruptedError(`stopped listing ${what} on ${context.api}`,
      { cause: error });
  }

  if (!isHttpError(error)) {
    const reason = error instanceof Error ? error.message : String(error);

    return new TransientError(
      `could not list ${what} on ${context.api}: ${redact(reason)}`,
      { cause: error });
  }

  if (error.response === undefined) {
    return new TransientError(
      `could not reach the GitHub API at ${context.api}: `
        + githubMessage(error),
      { cause: error, hint: 'check --github-api and the network, then '
        + 'run again' });
  }

  const status = error.status;
  const said = `${context.api} answered ${status}: ${githubMessage(error)}`;

  if (status === 401) {
    return new AuthenticationError(
      'the GitHub token was refused (GITHUB_TOKEN): create a token with '
        + 'read:packages',
      { status, cause: error, hint: said });
  }

  if (isRateLimited(error)) {
    const wait = requestedWaitMs(error);
    const until = wait === undefined
      ? 'for a while'
      : `until ${new Date(Date.now() + wait).toISOString()}`;

    return new TransientError(
      `GitHub's API rate limit stopped listing ${what} on ${context.api}`,
      { status, cause: error, hint: `${said}; the limit holds ${until}` });
  }

  if (status === 403 && lacksPackageScope(error)) {
    const granted = header(error, 'x-oauth-scopes');
    const scopes = granted === undefined
      ? ''
      : ` (token scopes: ${granted || 'none'})`;

    return new AuthenticationError('the token lacks read:packages', {
      status, cause: error,
      hint: `${said}${scopes}; give the personal access token (classic) in `
        + 'GITHUB_TOKEN the read:packages scope',
    });
  }

  if (status === 403) {
    return new AuthenticationError(
      `GitHub refused to list ${what} on ${context.api} (403)`,
      { status, cause: error, hint: said });
  }

  if (status === 404 && context.packageName === undefined) {
    const kind = context.ownerKind === 'org' ? 'organisation' : 'user';

    return new NotFoundError(
      `no ${kind} ${context.owner} on ${context.api} (or the token cannot `
        + 'see it)',
      { status, cause: error, hint: `check the ${context.ownerKind === 'org'
        ? '--org' : '--user'} name and that the token's owner can see it` });
  }

  if (status === 404) {
    return new NotFoundError(`could not list ${what} on ${context.api}`,
      { status, cause: error, hint: said });
  }

  if (status >= 500) {
    return new TransientError(
      `could not list ${what} on ${context.api}`,
      { status, cause: error, hint: `${said}; run again later` });
  }

  // a 400 or 422 means the server does not take our request as GitHub does
  return new InvalidInputError(`could not list ${what} on ${context.api}`,
    { status, cause: error, hint: `${said}; check that --github-api is a `
      + 'GitHub REST API root' });
}
