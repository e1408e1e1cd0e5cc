// The secrets a step needs, read from Secrets Manager at cold start: only
// those whose ARN its configuration holds (see STEP_SECRETS). Errors name
// the secret's ARN and what the role or the secret lacks, and never
// contain the value.

import {
  GetSecretValueCommand, type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';

import {
  AuthenticationError, InvalidInputError, NotFoundError, TransientError,
} from '../lib/errors.js';
import type { HandlerConfig } from './config.js';
import type { SecretName } from './step-secrets.js';

export interface HandlerSecrets {
  /** Read when the configuration names its secret. */
  githubToken?: string;
  targetCredentials?: { username: string; password: string };
}

/**
 * What each secret holds, as `put-secret-value` takes it. Placeholders
 * only: these end up in error messages.
 */
const SECRET_STRING: Record<SecretName, string> = {
  githubToken: '"$GITHUB_TOKEN"',
  targetCredentials: '\'{"username": "...", "password": "..."}\'',
};

export async function readSecrets(client: SecretsManagerClient,
  config: HandlerConfig): Promise<HandlerSecrets> {
  const tokenArn = config.githubTokenSecretArn;
  const targetArn = config.targetCredentialsSecretArn;
  const [token, target] = await Promise.all([
    tokenArn ? secretString(client, tokenArn, 'githubToken')
      : Promise.resolve(undefined),
    targetArn ? secretString(client, targetArn, 'targetCredentials')
      : Promise.resolve(undefined),
  ]);

  const githubToken = token?.trim();
  if (tokenArn && !githubToken) {
    throw new InvalidInputError(`secret ${tokenArn} is empty`,
      { hint: 'store the GitHub token (read:packages) as its plain text ' +
        'value' });
  }

  return {
    githubToken,
    targetCredentials: target === undefined ? undefined
      : parseCredentials(target, targetArn!),
  };
}

function parseCredentials(text: string, arn: string):
  { username: string; password: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const { username, password } = (value ?? {}) as Record<string, unknown>;
  if (typeof username !== 'string' || !username ||
      typeof password !== 'string' || !password) {
    throw new InvalidInputError(
      `secret ${arn} is not {"username": "...", "password": "..."}`,
      { hint: 'store the target registry\'s credentials as that JSON ' +
        'object' });
  }
  return { username, password };
}

async function secretString(client: SecretsManagerClient, arn: string,
  name: SecretName): Promise<string> {
  try {
    const answer = await client.send(new GetSecretValueCommand({
      SecretId: arn,
    }));
    if (answer.SecretString === undefined) {
      throw new InvalidInputError(`secret ${arn} has no string value`,
        { hint: 'store it as a string, not as binary' });
    }
    return answer.SecretString;
  } catch (error) {
    if (error instanceof InvalidInputError) throw error;
    throw secretError(error, arn, name);
  }
}

function secretError(error: unknown, arn: string, name: SecretName):
  Error {
  const kind = error instanceof Error ? error.name : 'Error';
  const what = `reading secret ${arn} failed (${kind})`;
  if (kind === 'ResourceNotFoundException') {
    // The stack creates its secrets without a value; until one is put,
    // Secrets Manager answers as if the secret were missing and says only
    // in its message that the secret exists but has no version. What to
    // do goes into the message itself: Lambda hands Step Functions the
    // message, not the hint.
    if (hasNoValue(error)) {
      const command = `aws secretsmanager put-secret-value --secret-id ` +
        `${arn} --secret-string ${SECRET_STRING[name]}`;
      return new NotFoundError(`secret ${arn} has no value yet ` +
        `(${kind}); put one with: ${command}`, {
        hint: 'a secret the stack creates starts without a value, so that ' +
          'none passes through a template', cause: error,
      });
    }
    const fix = 'fix the secret\'s name or ARN in the stack\'s settings ' +
      'and redeploy';
    return new NotFoundError(`${what}: no such secret in this account ` +
      `and region; ${fix}`, { hint: fix, cause: error });
  }
  if (kind === 'AccessDeniedException' || kind === 'DecryptionFailure') {
    return new AuthenticationError(what, {
      hint: 'the function\'s role needs secretsmanager:GetSecretValue on ' +
        'it (and kms:Decrypt on its key)', cause: error,
    });
  }
  return new TransientError(what, { cause: error });
}

/**
 * A secret without a current version: "Secrets Manager can't find the
 * specified secret value for staging label: AWSCURRENT". A missing secret
 * is "can't find the specified secret." instead.
 */
function hasNoValue(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return /secret value|staging label|version/i.test(message);
}
