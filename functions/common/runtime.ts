// What every handler shares within one Lambda container: the logger, the
// metrics, and the run's dependencies (stores, registries, the secrets its
// step uses), built once at cold start and reused by every invocation.

import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

import {
  chainCredentials, githubTokenCredentials,
} from '../lib/registry/credentials.js';
import type { CredentialProvider } from '../lib/registry/types.js';
import type { RunDeps, RunLogger } from '../lib/run/deps.js';
import { Registries } from '../lib/run/registries.js';
import { DynamoDbDigestStore } from '../lib/store/dynamodb-digest-store.js';
import { DynamoDbRunStore } from '../lib/store/dynamodb-run-store.js';
import { readConfig, type HandlerConfig } from './config.js';
import { readSecrets } from './secrets.js';
import type { SecretName } from './step-secrets.js';

export const SERVICE_NAME = 'ghcr-backup';
export const METRICS_NAMESPACE = 'GhcrBackup';

export interface Runtime {
  config: HandlerConfig;
  deps: RunDeps;
  logger: Logger;
  metrics: Metrics;
}

export interface RuntimeOptions {
  /** The secrets the step reads, from STEP_SECRETS; no others are read. */
  uses: readonly SecretName[];
  env?: NodeJS.ProcessEnv;
  secrets?: SecretsManagerClient;
  dynamodb?: DynamoDBClient;
}

/** One JSON object a line; level from POWERTOOLS_LOG_LEVEL (INFO). */
export const logger = new Logger({
  serviceName: process.env.POWERTOOLS_SERVICE_NAME || SERVICE_NAME,
});

export const metrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE || METRICS_NAMESPACE,
  serviceName: process.env.POWERTOOLS_SERVICE_NAME || SERVICE_NAME,
});

/**
 * The core's logger interface over Powertools' Logger, whose methods take
 * their extra fields as a rest parameter rather than an optional one.
 */
export function coreLogger(target: Logger): RunLogger {
  const at = (level: 'debug' | 'info' | 'warn') =>
    (message: string, fields?: Record<string, unknown>) => {
      if (fields) target[level](message, fields);
      else target[level](message);
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn') };
}

/**
 * Runtimes by the secrets they hold. A Lambda container runs one step, so
 * it builds one; a process running every handler (tests) builds one per
 * step's set of secrets.
 */
const started = new Map<string, Promise<Runtime>>();

/**
 * The container's runtime for a step that reads the secrets `uses`,
 * built on first call (at cold start, as the handler modules call it when
 * loaded). A failed start is forgotten, so the next invocation tries
 * again rather than failing forever.
 */
export function runtime(options: RuntimeOptions): Promise<Runtime> {
  const key = [...options.uses].sort().join(',');
  let current = started.get(key);
  if (!current) {
    const starting = createRuntime(options);
    current = starting;
    started.set(key, starting);
    starting.catch(() => {
      if (started.get(key) === starting) started.delete(key);
    });
  }
  return current;
}

/** Drops the runtimes, so the next call builds new ones (tests). */
export function resetRuntime(): void {
  started.clear();
}

/** A new runtime, reading its step's secrets now; runtime() caches it. */
export async function createRuntime(options: RuntimeOptions):
  Promise<Runtime> {
  const config = readConfig(options.env ?? process.env, options.uses);
  const secrets = await readSecrets(
    options.secrets ?? new SecretsManagerClient({}), config);

  const log = coreLogger(logger);
  const dynamodb = options.dynamodb ?? new DynamoDBClient({});
  const stores = { client: dynamodb, tableName: config.tableName,
    logger: log };

  // the token for the source registry; the target's credentials (if any)
  // for every other host; ECR hosts get tokens from the role instead. A
  // step that does not read a secret never contacts the host it is for.
  const providers: CredentialProvider[] = [];
  if (secrets.githubToken) {
    providers.push(githubTokenCredentials({
      token: secrets.githubToken, hosts: [config.sourceRegistry.host],
    }));
  }
  if (secrets.targetCredentials) {
    const target = secrets.targetCredentials;
    providers.push(async (host) => host === config.sourceRegistry.host
      ? undefined : target);
  }
  const registries = new Registries({
    credentials: chainCredentials(...providers),
    logger: log,
  });

  const deps: RunDeps = {
    runs: new DynamoDbRunStore(stores),
    digests: new DynamoDbDigestStore(stores),
    github: secrets.githubToken === undefined ? undefined
      : { token: secrets.githubToken, api: config.githubApi },
    source: config.sourceRegistry,
    registry: (endpoint) => registries.registry(endpoint),
    prepareRepository: (target, repository) =>
      registries.prepareRepository(target, repository),
    pageConcurrency: config.pageConcurrency,
    logger: log,
  };

  logger.debug('runtime ready', {
    table: config.tableName, source: config.sourceRegistry.host,
    githubApi: config.githubApi,
    githubToken: secrets.githubToken !== undefined,
    targetCredentials: secrets.targetCredentials !== undefined,
  });
  return { config, deps, logger, metrics };
}
