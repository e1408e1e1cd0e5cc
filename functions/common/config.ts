// The handlers' configuration, read once from the environment at cold
// start. The stack sets these variables; the secrets themselves are never
// in the environment, only the ARNs to read them from, and only on the
// functions whose step reads them.

import { InvalidInputError } from '../lib/errors.js';
import { DEFAULT_GITHUB_API } from '../lib/github/index.js';
import { parseRegistry } from '../lib/registry/reference.js';
import type { RegistryEndpoint } from '../lib/registry/types.js';
import type { SecretName } from './step-secrets.js';

export interface HandlerConfig {
  /** TABLE_NAME: the DynamoDB table of both stores. */
  tableName: string;
  /**
   * GITHUB_TOKEN_SECRET_ARN: a secret whose string is the token. Set only
   * when the step reads the token.
   */
  githubTokenSecretArn?: string;
  /**
   * TARGET_CREDENTIALS_SECRET_ARN: a secret holding
   * {"username", "password"} for the target; none for ECR or anonymous,
   * nor when the step does not contact the target.
   */
  targetCredentialsSecretArn?: string;
  /** SOURCE_REGISTRY, default ghcr.io. */
  sourceRegistry: RegistryEndpoint;
  /** GITHUB_API, default https://api.github.com. */
  githubApi: string;
  /** PAGE_CONCURRENCY: plan pages worked on at once, default 4. */
  pageConcurrency: number;
}

/**
 * Reads and checks the configuration of a step that reads the secrets
 * named in `uses` (see STEP_SECRETS); names every missing variable. The
 * ARN of a secret the step does not use is left out, even when set.
 */
export function readConfig(env: NodeJS.ProcessEnv,
  uses: readonly SecretName[]): HandlerConfig {
  const required = ['TABLE_NAME'];
  if (uses.includes('githubToken')) required.push('GITHUB_TOKEN_SECRET_ARN');
  const missing = required.filter((name) => !env[name]?.trim());
  if (missing.length > 0) {
    throw new InvalidInputError(
      `missing environment variable(s): ${missing.join(', ')}`,
      { hint: 'the stack sets them on the functions that use them; ' +
        'redeploy it, or set them when running a handler by hand' });
  }

  const source = env.SOURCE_REGISTRY?.trim() || 'ghcr.io';
  let sourceRegistry: RegistryEndpoint;
  try {
    sourceRegistry = parseRegistry(source);
  } catch (error) {
    throw new InvalidInputError(`SOURCE_REGISTRY is not ` +
      `[http://]HOST[:PORT]: ${(error as Error).message}`, { cause: error });
  }

  const githubApi = (env.GITHUB_API?.trim() || DEFAULT_GITHUB_API)
    .replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]/.test(githubApi)) {
    throw new InvalidInputError(`GITHUB_API is not a URL: ${githubApi}`,
      { hint: 'e.g. https://api.github.com or https://HOST/api/v3' });
  }

  const pages = Number(env.PAGE_CONCURRENCY?.trim() || 4);
  if (!Number.isInteger(pages) || pages < 1 || pages > 1000) {
    throw new InvalidInputError(
      `PAGE_CONCURRENCY must be a whole number from 1 to 1000, got ` +
      `${env.PAGE_CONCURRENCY}`);
  }

  return {
    tableName: env.TABLE_NAME!.trim(),
    githubTokenSecretArn: uses.includes('githubToken')
      ? env.GITHUB_TOKEN_SECRET_ARN!.trim() : undefined,
    targetCredentialsSecretArn: uses.includes('targetCredentials')
      ? env.TARGET_CREDENTIALS_SECRET_ARN?.trim() || undefined : undefined,
    sourceRegistry,
    githubApi,
    pageConcurrency: pages,
  };
}
