// Amazon ECR as a backup target.
//
// ECR differs from other registries in two ways that matter here: its
// registry password is a 12-hour token obtained with the caller's AWS
// credentials (ecr:GetAuthorizationToken), and it refuses a push to a
// repository that does not exist yet, so the repository is created first.

import {
  CreateRepositoryCommand,
  DescribeRepositoriesCommand,
  ECRClient,
  GetAuthorizationTokenCommand,
} from '@aws-sdk/client-ecr';

import {
  AuthenticationError,
  InvalidInputError,
  TransientError,
} from '../errors.js';
import type {
  CredentialProvider,
  Credentials,
} from '../registry/types.js';

/** The parts of an ECR registry host name. */
export interface EcrRegistry {
  /** `ACCOUNT.dkr.ecr.REGION.amazonaws.com` as given, lowercase. */
  host: string;
  /** The 12-digit AWS account that owns the registry. */
  account: string;
  region: string;
}

/** Debug output for decisions; silent unless a logger is passed. */
export interface EcrLogger {
  debug(message: string, fields: Record<string, unknown>): void;
}

export interface EcrOptions {
  /**
   * Returns the ECR client for a region. Default: one `ECRClient` per
   * region with the SDK's default credential chain (the function's role).
   */
  clientFor?: (region: string) => ECRClient;
  /** The clock, in epoch ms. Default `Date.now`. */
  now?: () => number;
  logger?: EcrLogger;
}

// AWS partitions name their endpoints differently: `amazonaws.com`,
// `amazonaws.com.cn`, and a `-fips` variant of the service label.
const ECR_HOST =
  /^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(?:\.cn)?$/;

/**
 * Recognises an ECR registry host (`ACCOUNT.dkr.ecr.REGION.amazonaws.com`,
 * with or without a port); undefined for any other registry.
 */
export function parseEcrHost(host: string): EcrRegistry | undefined {
  const name = host.toLowerCase().replace(/:\d+$/, '');
  const match = ECR_HOST.exec(name);
  if (!match) return undefined;

  return { host: name, account: match[1]!, region: match[2]! };
}

/**
 * Tokens live 12 hours; renew this long before they expire so that a copy
 * never starts with a token about to lapse mid-upload.
 */
export const TOKEN_RENEWAL_MARGIN_MS = 15 * 60 * 1000;

/**
 * A credential provider for ECR hosts: asks `ecr:GetAuthorizationToken`
 * once per region and hands out the decoded token until shortly before it
 * expires. Other hosts go to `fallback` (anonymous when there is none).
 */
export function ecrCredentialProvider(
  options: EcrOptions & { fallback?: CredentialProvider } = {},
): CredentialProvider {
  const clientFor = options.clientFor ?? defaultClients();
  const now = options.now ?? Date.now;
  const cache = new Map<string, Promise<CachedToken>>();

  return async (host) => {
    const registry = parseEcrHost(host);
    if (!registry) return options.fallback?.(host);

    // a token still valid well past now is handed out as is
    const key = registry.region;
    const current = cache.get(key);
    if (current) {
      const cached = await current.catch(() => undefined);
      if (cached && now() < cached.expiresAt - TOKEN_RENEWAL_MARGIN_MS) {
        return cached.credentials;
      }
      if (cache.get(key) === current) cache.delete(key);
    }

    // one request per region even when many copies ask at once
    let pending = cache.get(key);
    if (!pending) {
      const started = fetchToken(clientFor(registry.region), registry,
        options);
      cache.set(key, started);

      // a failure is not remembered: the next call asks again
      started.catch(() => {
        if (cache.get(key) === started) cache.delete(key);
      });
      pending = started;
    }

    return (await pending).credentials;
  };
}

interface CachedToken {
  credentials: Credentials;
  /** Epoch ms. */
  expiresAt: number;
}

async function fetchToken(
  client: ECRClient,
  registry: EcrRegistry,
  options: EcrOptions,
): Promise<CachedToken> {
  let answer;
  try {
    answer = await client.send(new GetAuthorizationTokenCommand({}));
  } catch (error) {
    throw fromAwsError(error, `getting an ECR token for ${registry.host}`,
      'the role needs ecr:GetAuthorizationToken (on resource "*")');
  }

  const data = answer.authorizationData?.[0];
  const decoded = data?.authorizationToken
    ? Buffer.from(data.authorizationToken, 'base64').toString('utf8')
    : '';
  const colon = decoded.indexOf(':');
  if (colon <= 0) {
    throw new AuthenticationError(
      `ECR returned no usable authorization token for ${registry.host}`,
      { hint: 'expected base64 of "AWS:PASSWORD"; retry, and check the ' +
        'region of the target' });
  }

  // without an expiry, assume the documented 12 hours
  const expiresAt = data?.expiresAt?.getTime()
    ?? (options.now ?? Date.now)() + 12 * 3600 * 1000;
  options.logger?.debug('ECR token obtained', {
    registry: registry.host, expiresAt: new Date(expiresAt).toISOString(),
  });

  return {
    credentials: {
      username: decoded.slice(0, colon),
      password: decoded.slice(colon + 1),
    },
    expiresAt,
  };
}

/** What `ensureRepository` found. */
export type RepositoryState = 'existing' | 'created';

/**
 * Creates the repositories of one ECR registry before the first push to
 * them. Remembers which exist, so each name costs one API call per
 * process at most.
 */
export class EcrRepositories {
  readonly registry: EcrRegistry;
  readonly #client: ECRClient;
  readonly #logger?: EcrLogger;
  readonly #known = new Map<string, Promise<RepositoryState>>();

  /** `host` must be an ECR host (see `parseEcrHost`). */
  constructor(host: string, options: EcrOptions = {}) {
    const registry = parseEcrHost(host);
    if (!registry) {
      throw new InvalidInputError(`${host} is not an Amazon ECR registry`, {
        hint: 'ECR hosts look like ACCOUNT.dkr.ecr.REGION.amazonaws.com',
      });
    }
    this.registry = registry;
    this.#client = (options.clientFor ?? defaultClients())(registry.region);
    this.#logger = options.logger;
  }

  /**
   * Makes sure `name` exists, creating it (mutable tags, so that a moved
   * tag such as `latest` can be updated) when ECR says it is not found.
   */
  ensureRepository(name: string): Promise<RepositoryState> {
    let pending = this.#known.get(name);
    if (!pending) {
      pending = this.#ensure(name);
      this.#known.set(name, pending);
      pending.catch(() => this.#known.delete(name));
    }
    return pending;
  }

  async #ensure(name: string): Promise<RepositoryState> {
    const registryId = this.registry.account;
    try {
      await this.#client.send(new DescribeRepositoriesCommand({
        registryId, repositoryNames: [name],
      }));
      return 'existing';
    } catch (error) {
      if (errorName(error) !== 'RepositoryNotFoundException') {
        throw fromAwsError(error,
          `looking up ECR repository ${name} in ${this.registry.host}`,
          'the role needs ecr:DescribeRepositories on the repository');
      }
    }

    try {
      await this.#client.send(new CreateRepositoryCommand({
        registryId, repositoryName: name, imageTagMutability: 'MUTABLE',
      }));
    } catch (error) {
      // another copy created it a moment ago
      if (errorName(error) === 'RepositoryAlreadyExistsException') {
        return 'existing';
      }
      throw fromAwsError(error,
        `creating ECR repository ${name} in ${this.registry.host}`,
        'the role needs ecr:CreateRepository on the repository, and the ' +
        'name must be lowercase letters, digits, ".", "_", "-" and "/"');
    }

    this.#logger?.debug('ECR repository created', {
      registry: this.registry.host, repository: name,
    });
    return 'created';
  }
}

function defaultClients(): (region: string) => ECRClient {
  const clients = new Map<string, ECRClient>();
  return (region) => {
    let client = clients.get(region);
    if (!client) {
      client = new ECRClient({ region });
      clients.set(region, client);
    }
    return client;
  };
}

function errorName(error: unknown): string | undefined {
  return error instanceof Error ? error.name : undefined;
}

const DENIED = new Set([
  'AccessDeniedException', 'UnrecognizedClientException',
  'ExpiredTokenException', 'InvalidSignatureException',
  'CredentialsProviderError',
]);

/** Sorts an AWS SDK error into the project's error families. */
function fromAwsError(error: unknown, what: string, hint: string): Error {
  const name = errorName(error) ?? 'Error';
  const detail = error instanceof Error ? error.message : String(error);
  const meta = (error as { $metadata?: { httpStatusCode?: number };
    $fault?: string; $retryable?: unknown } | undefined);
  const status = meta?.$metadata?.httpStatusCode;
  const message = `${what} failed: ${name}: ${detail}`;

  if (DENIED.has(name) || status === 401 || status === 403) {
    return new AuthenticationError(message, { hint, status, cause: error });
  }
  if (meta?.$fault === 'server' || meta?.$retryable || status === 429 ||
      /Throttl|TooManyRequests|Timeout|ECONN|EAI_AGAIN/i.test(name)) {
    return new TransientError(message, { status, cause: error });
  }
  return new InvalidInputError(message, { hint, status, cause: error });
}
