// The org run's pieces that need no registry: the execution input, the
// summary, the copy deadline, errors as Step Functions hands them over,
// and the handlers' configuration and secrets.

import {
  GetSecretValueCommand, ResourceNotFoundException, SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';

import { readConfig } from '../functions/common/config.js';
import { readSecrets } from '../functions/common/secrets.js';
import { STEP_SECRETS } from '../functions/common/step-secrets.js';
import {
  AuthenticationError, InvalidInputError, NotFoundError,
} from '../functions/lib/errors.js';
import {
  copyDeadline, describeCaught,
} from '../functions/lib/run/copy-image.js';
import { refusesCredentials } from '../functions/lib/run/check-page.js';
import { parseExecutionInput } from '../functions/lib/run/input.js';
import { RegistryAuthenticationError }
  from '../functions/lib/registry/errors.js';
import { imageName, tally } from '../functions/lib/run/summarize.js';
import type { ImageResult } from '../functions/lib/store/types.js';

describe('parseExecutionInput', () => {
  it('accepts an org, a target and every option', () => {
    // Act
    const run = parseExecutionInput({ org: 'acme',
      target: 'http://127.0.0.1:5000/backup/', packages: '^app',
      excludeTags: '-rc', allVersions: true, dryRun: true,
      concurrency: 8 });

    // Assess
    expect(run).toMatchObject({
      owner: { kind: 'org', name: 'acme' },
      target: { registry: { host: '127.0.0.1:5000', scheme: 'http' },
        path: 'backup' },
      targetText: 'http://127.0.0.1:5000/backup',
      allVersions: true, dryRun: true, concurrency: 8,
    });
    expect(run.packages?.test('app-web')).toBe(true);
    expect(run.excludeTags?.source).toBe('-rc');
  });

  it('defaults to the thinned selection, a real run and 4 images at once',
    () => {
      // Act
      const run = parseExecutionInput({ user: 'octocat',
        target: 'registry.example.com' });

      // Assess
      expect(run).toMatchObject({ owner: { kind: 'user', name: 'octocat' },
        allVersions: false, dryRun: false, concurrency: 4,
        targetText: 'registry.example.com' });
    });

  it.each([
    ['a string', '"acme"', /must be a JSON object/],
    ['neither org nor user', { target: 'r.example.com' },
      /exactly one of "org" and "user"/],
    ['both org and user', { org: 'a', user: 'b', target: 'r.example.com' },
      /exactly one of "org" and "user"/],
    ['an org that is no GitHub name', { org: 'acme corp',
      target: 'r.example.com' }, /"org" is not a GitHub account name/],
    ['no target', { org: 'acme' }, /"target" is missing/],
    ['a target without a host', { org: 'acme', target: 'backup' },
      /"target" is not \[http:\/\/\]HOST/],
    ['a target with another scheme', { org: 'acme',
      target: 'ftp://r.example.com' }, /unsupported scheme "ftp"/],
    ['a broken regular expression', { org: 'acme', target: 'r.example.com',
      packages: '(' }, /"packages" is not a regular expression/],
    ['a dry run that is not a boolean', { org: 'acme',
      target: 'r.example.com', dryRun: 'yes' },
    /"dryRun" must be true or false/],
    ['a concurrency of zero', { org: 'acme', target: 'r.example.com',
      concurrency: 0 }, /"concurrency" must be a whole number from 1/],
    ['a misspelt field', { org: 'acme', target: 'r.example.com',
      pakages: 'x' }, /unknown field\(s\) in the execution input: pakages/],
  ])('refuses %s with InvalidInputError', (_, input, message) => {
    // Act
    const act = () => parseExecutionInput(
      typeof input === 'string' ? JSON.parse(input) : input);

    // Assess
    expect(act).toThrow(InvalidInputError);
    expect(act).toThrow(message);
  });
});

function result(overrides: Partial<ImageResult>): ImageResult {
  return {
    package: 'app', digest: 'sha256:aa', tags: ['1.0'], status: 'copied',
    blobs: { uploaded: 2, mounted: 1, skipped: 0, foreign: 0 },
    bytesUploaded: 100, durationMs: 5, ...overrides,
  };
}

describe('tally', () => {
  it('adds up images, blobs and bytes', () => {
    // Act
    const summary = tally('run', false, [
      result({}),
      result({ package: 'web', status: 'up-to-date', bytesUploaded: 0,
        blobs: { uploaded: 0, mounted: 0, skipped: 0, foreign: 0 } }),
      result({ package: 'db', status: 'failed', bytesUploaded: 0,
        blobs: { uploaded: 0, mounted: 0, skipped: 3, foreign: 1 },
        error: { name: 'NotFoundError', message: 'gone' } }),
    ]);

    // Assess
    expect(summary).toMatchObject({
      images: { total: 3, copied: 1, upToDate: 1, failed: 1 },
      blobs: { uploaded: 2, mounted: 1, skipped: 3, foreign: 1 },
      bytesUploaded: 100,
      failures: [{ package: 'db', tags: ['1.0'],
        error: { name: 'NotFoundError', message: 'gone' } }],
    });
  });

  it('names at most 20 failures, sorted by package', () => {
    // Act
    const failures = Array.from({ length: 25 }, (_, i) => result({
      package: `p${String(24 - i).padStart(2, '0')}`, status: 'failed',
      error: { name: 'IntegrityError', message: 'bad blob' } }));
    const summary = tally('run', false, failures);

    // Assess
    expect(summary.images.failed).toBe(25);
    expect(summary.failures).toHaveLength(20);
    expect(summary.failures[0]!.package).toBe('p00');
  });
});

describe('imageName', () => {
  it('names an image by its tags, or by digest when it has none', () => {
    // Assess
    expect(imageName({ package: 'app', digest: 'sha256:aa',
      tags: ['1.0', 'latest'] })).toBe('app:1.0,latest');
    expect(imageName({ package: 'app', digest: 'sha256:aa', tags: [] }))
      .toBe('app@sha256:aa');
  });
});

describe('copyDeadline', () => {
  it('keeps a quarter of the remaining time for blobs in flight', () => {
    // Assess
    expect(copyDeadline(900_000, 1_000)).toBe(1_000 + 675_000);
  });

  it('keeps at least ten seconds', () => {
    // Assess
    expect(copyDeadline(20_000, 0)).toBe(10_000);
    expect(copyDeadline(5_000, 0)).toBe(0);
  });
});

describe('describeCaught', () => {
  it('reads the message out of a Lambda error cause', () => {
    // Act
    const error = describeCaught({ Error: 'IntegrityError',
      Cause: JSON.stringify({ errorType: 'IntegrityError',
        errorMessage: 'blob sha256:aa changed', trace: ['at x'] }) });

    // Assess
    expect(error).toEqual({ name: 'IntegrityError',
      message: 'blob sha256:aa changed' });
  });

  it('keeps a plain cause as the message', () => {
    // Assess
    expect(describeCaught({ Error: 'States.Timeout', Cause: 'timed out' }))
      .toEqual({ name: 'States.Timeout', message: 'timed out' });
  });
});

describe('refusesCredentials', () => {
  const context = { registry: 'r.example.com', repository: 'backup/app' };

  it.each([
    ['credentials refused (401)', new RegistryAuthenticationError(context,
      'refused', { status: 401 }), true],
    ['a repository denied (403)', new RegistryAuthenticationError(context,
      'denied', { status: 403 }), false],
    ['a scope the token lacks', new RegistryAuthenticationError(context,
      'lacks access', { status: 401, insufficientScope: true }), false],
    ['a missing manifest', new NotFoundError('no such tag'), false],
  ])('tells a target that refuses us from %s', (_, error, refuses) => {
    // Assess
    expect(refusesCredentials(error)).toBe(refuses);
  });
});

describe('readConfig', () => {
  const BOTH = ['githubToken', 'targetCredentials'] as const;

  it('reads the stack\'s variables with their defaults', () => {
    // Act
    const config = readConfig({ TABLE_NAME: 'backup',
      GITHUB_TOKEN_SECRET_ARN: 'arn:token' }, BOTH);

    // Assess
    expect(config).toEqual({
      tableName: 'backup', githubTokenSecretArn: 'arn:token',
      targetCredentialsSecretArn: undefined,
      sourceRegistry: { host: 'ghcr.io', scheme: 'https' },
      githubApi: 'https://api.github.com', pageConcurrency: 4,
    });
  });

  it('names every missing variable', () => {
    // Act
    const act = () => readConfig({}, BOTH);

    // Assess
    expect(act).toThrow(
      'missing environment variable(s): TABLE_NAME, GITHUB_TOKEN_SECRET_ARN');
  });

  it('keeps only the ARNs of the secrets the step uses', () => {
    // Prepare
    const env = { TABLE_NAME: 't', GITHUB_TOKEN_SECRET_ARN: 'arn:token',
      TARGET_CREDENTIALS_SECRET_ARN: 'arn:target' };

    // Act
    const check = readConfig(env, STEP_SECRETS.checkPage);
    const summarize = readConfig({ TABLE_NAME: 't' }, STEP_SECRETS.summarize);

    // Assess
    expect(check).toMatchObject({ githubTokenSecretArn: undefined,
      targetCredentialsSecretArn: 'arn:target' });
    expect(summarize).toMatchObject({ githubTokenSecretArn: undefined,
      targetCredentialsSecretArn: undefined });
  });

  it('refuses a source registry with a path', () => {
    // Act
    const act = () => readConfig({ TABLE_NAME: 't',
      GITHUB_TOKEN_SECRET_ARN: 'a', SOURCE_REGISTRY: 'ghcr.io/acme' }, BOTH);

    // Assess
    expect(act).toThrow(/SOURCE_REGISTRY is not \[http:\/\/\]HOST\[:PORT\]/);
  });
});

describe('readSecrets', () => {
  const secrets = mockClient(SecretsManagerClient);
  afterEach(() => secrets.reset());
  const env = { TABLE_NAME: 't', GITHUB_TOKEN_SECRET_ARN: 'arn:token',
    TARGET_CREDENTIALS_SECRET_ARN: 'arn:target' };
  const config = readConfig(env, ['githubToken', 'targetCredentials']);

  /** What Secrets Manager answers for a secret that has no version yet. */
  function noValueYet() {
    return new ResourceNotFoundException({ $metadata: {},
      message: 'Secrets Manager can\'t find the specified secret value ' +
        'for staging label: AWSCURRENT' });
  }

  it('reads the token and the target\'s credentials', async () => {
    // Prepare
    secrets.on(GetSecretValueCommand, { SecretId: 'arn:token' })
      .resolves({ SecretString: 'ghp_token\n' });
    secrets.on(GetSecretValueCommand, { SecretId: 'arn:target' })
      .resolves({ SecretString: '{"username":"u","password":"p"}' });

    // Act
    const read = await readSecrets(new SecretsManagerClient({}), config);

    // Assess
    expect(read).toEqual({ githubToken: 'ghp_token',
      targetCredentials: { username: 'u', password: 'p' } });
  });

  it('reads only the secrets whose ARN the step\'s configuration holds',
    async () => {
      // Prepare
      secrets.on(GetSecretValueCommand)
        .resolves({ SecretString: '{"username":"u","password":"p"}' });

      // Act
      const check = await readSecrets(new SecretsManagerClient({}),
        readConfig(env, STEP_SECRETS.checkPage));
      const summarize = await readSecrets(new SecretsManagerClient({}),
        readConfig(env, STEP_SECRETS.summarize));

      // Assess
      expect(check).toEqual({ githubToken: undefined,
        targetCredentials: { username: 'u', password: 'p' } });
      expect(summarize).toEqual({ githubToken: undefined,
        targetCredentials: undefined });
      expect(secrets.commandCalls(GetSecretValueCommand)
        .map((call) => call.args[0].input.SecretId)).toEqual(['arn:target']);
    });

  it('says which secret is malformed, without its value', async () => {
    // Prepare
    secrets.on(GetSecretValueCommand, { SecretId: 'arn:token' })
      .resolves({ SecretString: 'ghp_token' });
    secrets.on(GetSecretValueCommand, { SecretId: 'arn:target' })
      .resolves({ SecretString: 'u:hunter2' });

    // Act
    const act = readSecrets(new SecretsManagerClient({}), config);

    // Assess
    await expect(act).rejects.toThrow(InvalidInputError);
    await expect(act).rejects.toThrow(
      'secret arn:target is not {"username": "...", "password": "..."}');
    await expect(act).rejects.not.toThrow(/hunter2/);
  });

  it('sorts refusals and missing secrets into their error families',
    async () => {
      // Prepare
      const denied = Object.assign(new Error('not allowed'),
        { name: 'AccessDeniedException' });
      const missing = Object.assign(new Error('no such secret'),
        { name: 'ResourceNotFoundException' });
      secrets.on(GetSecretValueCommand, { SecretId: 'arn:token' })
        .rejects(denied);
      secrets.on(GetSecretValueCommand, { SecretId: 'arn:target' })
        .rejects(missing);

      // Act
      const token = readSecrets(new SecretsManagerClient({}),
        { ...config, targetCredentialsSecretArn: undefined });
      const target = readSecrets(new SecretsManagerClient({}),
        { ...config, githubTokenSecretArn: 'arn:target' });

      // Assess
      await expect(token).rejects.toThrow(AuthenticationError);
      await expect(token).rejects.toMatchObject({
        message: 'reading secret arn:token failed (AccessDeniedException)',
        hint: expect.stringMatching(/secretsmanager:GetSecretValue/) });
      await expect(target).rejects.toThrow(NotFoundError);
    });

  it('says a secret created empty has no value yet and how to put one',
    async () => {
      // Prepare: both secrets as the stack creates them
      secrets.on(GetSecretValueCommand).rejects(noValueYet());

      // Act
      const token = readSecrets(new SecretsManagerClient({}),
        { ...config, targetCredentialsSecretArn: undefined });
      const target = readSecrets(new SecretsManagerClient({}),
        { ...config, githubTokenSecretArn: undefined });

      // Assess
      await expect(token).rejects.toThrow(NotFoundError);
      await expect(token).rejects.toThrow('secret arn:token has no value ' +
        'yet (ResourceNotFoundException); put one with: aws ' +
        'secretsmanager put-secret-value --secret-id arn:token ' +
        '--secret-string "$GITHUB_TOKEN"');
      await expect(target).rejects.toThrow('aws secretsmanager ' +
        'put-secret-value --secret-id arn:target --secret-string ' +
        '\'{"username": "...", "password": "..."}\'');
    });

  it('tells a secret that does not exist from one without a value',
    async () => {
      // Prepare: what Secrets Manager answers for an ARN of no secret
      secrets.on(GetSecretValueCommand).rejects(
        new ResourceNotFoundException({ $metadata: {},
          message: 'Secrets Manager can\'t find the specified secret.' }));

      // Act
      const act = readSecrets(new SecretsManagerClient({}),
        { ...config, targetCredentialsSecretArn: undefined });

      // Assess
      await expect(act).rejects.toThrow(NotFoundError);
      await expect(act).rejects.toThrow('reading secret arn:token failed ' +
        '(ResourceNotFoundException): no such secret in this account and ' +
        'region; fix the secret\'s name or ARN');
      await expect(act).rejects.not.toThrow(/put-secret-value|no value/);
    });
});
