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

export interface HandlerSecrets {
  /** Read when the configuration names its secret. */
  githubToken?: string;
  targetCredentials?: { username: string; password: string };
}

export async function readSecrets(client: SecretsManagerClient,
  config: HandlerConfig): Promise<HandlerSecrets> {
  const tokenArn = config.githubTokenSecretArn;
  const targetArn = config.targetCredentialsSecretArn;
  const [token, target] = await Promise.all([
    tokenArn ? secretString(client, tokenArn)
      : Promise.resolve(undefined),
    targetArn ? secretString(client, targetArn)
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

async function secretString(client: SecretsManagerClient, arn: string):
  Promise<string> {
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
    throw secretError(error, arn);
  }
}

function secretError(error: unknown, arn: string): Error {
  const name = error instanceof Error ? error.name : 'Error';
  const what = `reading secret ${arn} failed (${name})`;
  if (name === 'ResourceNotFoundException') {
    return new NotFoundError(what, {
      hint: 'create the secret, or fix its ARN in the stack', cause: error,
    });
  }
  if (name === 'AccessDeniedException' || name === 'DecryptionFailure') {
    return new AuthenticationError(what, {
      hint: 'the function\'s role needs secretsmanager:GetSecretValue on ' +
        'it (and kms:Decrypt on its key)', cause: error,
    });
  }
  return new TransientError(what, { cause: error });
}
