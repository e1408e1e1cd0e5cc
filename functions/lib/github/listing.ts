// Lists an organisation's or a user's container packages and every active
// version of each through GitHub's REST API, following Link pagination.
//
// Which endpoints serve a user: `/users/NAME/packages` shows other people
// only public packages, and its versions endpoint serves public packages
// only. When NAME is the token's own login, the `/user/packages` endpoints
// are used instead, which show private packages too. One `GET /user` tells
// which case applies; a token that cannot read `/user` (an app's token)
// falls back to `/users/NAME`.

import { Octokit } from '@octokit/rest';

import { AuthenticationError, InvalidInputError } from '../errors.js';
import { withoutState } from '../pattern.js';
import { isHttpError, toListingError, type RequestContext }
  from './errors.js';
import { installRetries } from './retry.js';
import type {
  ListOptions, ListedPackage, ListedVersion, ListingLogger,
} from './types.js';

export const DEFAULT_GITHUB_API = 'https://api.github.com';

const PACKAGE_TYPE = 'container';
const PER_PAGE = 100;

/** Whose packages, and through which family of endpoints. */
type Namespace =
  | { kind: 'org'; org: string }
  | { kind: 'self'; user: string }
  | { kind: 'user'; user: string };

interface PackageSummary {
  name: string;
  visibility: string;
  owner?: { login: string } | null;
}

interface VersionSummary {
  id: number;
  name: string;
  created_at: string;
  updated_at: string;
  metadata?: { container?: { tags?: string[] } };
}

const silent: ListingLogger = { debug() {}, warn() {} };

/**
 * Every container package of the org or user in `options` (of every
 * visibility the token can see), each with its active versions.
 */
export async function listContainerPackages(
  options: ListOptions): Promise<ListedPackage[]> {
  const settings = validate(options);
  const logger = options.logger ?? silent;
  const context: RequestContext = {
    api: settings.api, ownerKind: settings.ownerKind, owner: settings.owner,
  };

  const octokit = new Octokit({
    auth: options.token,
    baseUrl: settings.api,
    userAgent: 'ghcr-backup',
    log: {
      debug: () => {}, info: () => {},
      warn: (message: string) => logger.warn(message),
      error: (message: string) => logger.warn(message),
    },
    request: { fetch: options.fetch, signal: options.signal },
  });
  installRetries(octokit, {
    retries: settings.retries, retryDelayMs: settings.retryDelayMs,
    maxRetryWaitMs: settings.maxRetryWaitMs, logger, signal: options.signal,
  });

  const namespace = await namespaceOf(octokit, settings, context, logger);

  let summaries: PackageSummary[];
  try {
    summaries = await listPackages(octokit, namespace);
  } catch (error) {
    throw toListingError(error, context);
  }

  const wanted = summaries.filter((summary) =>
    settings.packages === undefined || settings.packages.test(summary.name));
  logger.debug('listed container packages', {
    owner: settings.owner, packages: summaries.length,
    selected: wanted.length,
  });

  const listed = await mapConcurrently(wanted, settings.concurrency,
    async (summary): Promise<ListedPackage | undefined> => {
      const versions = await listVersions(octokit, namespace, summary.name,
        { ...context, packageName: summary.name }, logger);
      if (versions === undefined) return undefined;

      const owner = summary.owner?.login ?? settings.owner;

      return {
        name: summary.name,
        visibility: summary.visibility,
        repository: `${owner}/${summary.name}`.toLowerCase(),
        versions,
      };
    });

  return listed.filter((item): item is ListedPackage => item !== undefined);
}

interface Settings {
  api: string;
  ownerKind: 'org' | 'user';
  owner: string;
  packages?: RegExp;
  concurrency: number;
  retries: number;
  retryDelayMs: number;
  maxRetryWaitMs: number;
}

function validate(options: ListOptions): Settings {
  const hasOrg = options.org !== undefined && options.org !== '';
  const hasUser = options.user !== undefined && options.user !== '';
  if (hasOrg === hasUser) {
    throw new InvalidInputError(
      'name exactly one of an organisation or a user to list packages of',
      { hint: 'pass --org ORG or --user NAME' });
  }

  if (!options.token) {
    throw new AuthenticationError('no GitHub token to list packages with', {
      hint: 'set GITHUB_TOKEN to a personal access token (classic) with '
        + 'read:packages' });
  }

  const api = (options.baseUrl ?? DEFAULT_GITHUB_API).replace(/\/+$/, '');
  if (!URL.canParse(api) || !/^https?:$/.test(new URL(api).protocol)) {
    throw new InvalidInputError(`the GitHub API URL ${api} is not an `
      + 'http(s) URL', { hint: 'pass --github-api https://HOST/api/v3 for '
        + 'GitHub Enterprise Server, or leave it out for github.com' });
  }

  return {
    api,
    ownerKind: hasOrg ? 'org' : 'user',
    owner: (hasOrg ? options.org : options.user) as string,
    packages: options.packages && withoutState(options.packages),
    concurrency: positiveInteger(options.concurrency ?? 4, 'concurrency'),
    retries: nonNegativeInteger(options.retries ?? 3, 'retries'),
    retryDelayMs: nonNegativeInteger(options.retryDelayMs ?? 1000,
      'retryDelayMs'),
    maxRetryWaitMs: nonNegativeInteger(options.maxRetryWaitMs ?? 60_000,
      'maxRetryWaitMs'),
  };
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new InvalidInputError(`${name} must be a positive integer, not `
      + String(value));
  }

  return value;
}

function nonNegativeInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 0) {
    throw new InvalidInputError(`${name} must be an integer of 0 or more, `
      + `not ${String(value)}`);
  }

  return value;
}

async function namespaceOf(octokit: Octokit, settings: Settings,
  context: RequestContext, logger: ListingLogger): Promise<Namespace> {
  if (settings.ownerKind === 'org') {
    return { kind: 'org', org: settings.owner };
  }

  try {
    const { data } = await octokit.rest.users.getAuthenticated();
    if (data.login.toLowerCase() === settings.owner.toLowerCase()) {
      logger.debug('listing the token owner\'s packages, private included',
        { user: settings.owner });

      return { kind: 'self', user: settings.owner };
    }
  } catch (error) {
    // a refused token fails here as it would on the packages endpoint
    if (isHttpError(error) && error.status === 401) {
      throw toListingError(error, context);
    }

    logger.debug('could not tell the token\'s login; listing as a visitor',
      { user: settings.owner,
        status: isHttpError(error) ? error.status : undefined });
  }

  return { kind: 'user', user: settings.owner };
}

async function listPackages(octokit: Octokit,
  namespace: Namespace): Promise<PackageSummary[]> {
  const query = { package_type: PACKAGE_TYPE, per_page: PER_PAGE } as const;

  switch (namespace.kind) {
    case 'org':
      return octokit.paginate(
        octokit.rest.packages.listPackagesForOrganization,
        { org: namespace.org, ...query });
    case 'self':
      return octokit.paginate(
        octokit.rest.packages.listPackagesForAuthenticatedUser, query);
    case 'user':
      return octokit.paginate(octokit.rest.packages.listPackagesForUser,
        { username: namespace.user, ...query });
  }
}

/**
 * The active versions of one package, or undefined when the package was
 * deleted between listing the packages and listing its versions.
 */
async function listVersions(octokit: Octokit, namespace: Namespace,
  packageName: string, context: RequestContext,
  logger: ListingLogger): Promise<ListedVersion[] | undefined> {
  // octokit encodes path parameters, so a `/` in a name is sent as %2F
  const query = {
    package_type: PACKAGE_TYPE, package_name: packageName,
    state: 'active', per_page: PER_PAGE,
  } as const;

  let versions: VersionSummary[];
  try {
    switch (namespace.kind) {
      case 'org':
        versions = await octokit.paginate(
          octokit.rest.packages.getAllPackageVersionsForPackageOwnedByOrg,
          { org: namespace.org, ...query });
        break;
      case 'self':
        versions = await octokit.paginate(octokit.rest.packages
          .getAllPackageVersionsForPackageOwnedByAuthenticatedUser, query);
        break;
      case 'user':
        versions = await octokit.paginate(
          'GET /users/{username}/packages/{package_type}/{package_name}'
            + '/versions', { username: namespace.user, ...query });
        break;
    }
  } catch (error) {
    if (isHttpError(error) && error.status === 404) {
      logger.warn('package disappeared while listing; leaving it out',
        { package: packageName });

      return undefined;
    }

    throw toListingError(error, context);
  }

  return versions.map((version) => ({
    id: version.id,
    digest: version.name,
    tags: [...(version.metadata?.container?.tags ?? [])],
    createdAt: version.created_at,
    updatedAt: version.updated_at,
  }));
}

/** `fn` over `items`, at most `limit` at once, results in input order. */
async function mapConcurrently<T, R>(items: readonly T[], limit: number,
  fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;

  async function worker(): Promise<void> {
    while (next < items.length) {
      const index = next;
      next += 1;
      results[index] = await fn(items[index] as T);
    }
  }

  await Promise.all(Array.from({ length: Math.min(limit, items.length) },
    worker));

  return results;
}
