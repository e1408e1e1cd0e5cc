// The Lambda handlers (functions/*.ts) as deployed, run by the local
// runner: configuration from the environment the stack sets, secrets from
// Secrets Manager (aws-sdk-client-mock), each function reading only those
// its step uses, both stores in DynamoDB (dynalite),
// real registries and our GitHub API server. Also checks the metrics that
// Summarize emits as CloudWatch embedded metrics.

import {
  GetSecretValueCommand, ResourceNotFoundException, SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { synthesizeWorkflowDefinition } from '../infra/workflow.js';
import { createRuntime, resetRuntime }
  from '../functions/common/runtime.js';
import { STEP_SECRETS, type StepName }
  from '../functions/common/step-secrets.js';
import { NotFoundError } from '../functions/lib/errors.js';
import { DynamoDbDigestStore }
  from '../functions/lib/store/dynamodb-digest-store.js';
import { DynamoDbRunStore } from '../functions/lib/store/dynamodb-run-store.js';
import { inventoryKey } from '../functions/lib/run/record.js';
import type { RunSummary } from '../functions/lib/run/types.js';
import {
  runWorkflowLocally, type LocalContext, type LocalHandler,
} from '../functions/local/run-workflow.js';
import { startDynalite, type Dynalite } from './harness/dynalite.js';
import { DEFAULT_TOKEN, startGitHubApi, type GitHubApi }
  from './harness/github-api.js';
import {
  createLayout, pushFixture, requireBinaries, startRegistry, stopAll,
  type Fixture, type TestRegistry,
} from './harness/index.js';
import { manifestStatus } from './copy-setup.js';

const TOKEN_ARN =
  'arn:aws:secretsmanager:us-east-1:123456789012:secret:github-token-AbCdEf';
const TARGET_ARN =
  'arn:aws:secretsmanager:us-east-1:123456789012:secret:target-GhIjKl';

let dynalite: Dynalite;
let api: GitHubApi;
let source: TestRegistry;
let target: TestRegistry;
let images: Fixture[];
const secrets = mockClient(SecretsManagerClient);
let handlers: Record<string, LocalHandler>;
let listHandler: LambdaHandler;

type LambdaHandler = (event: unknown, context: {
  getRemainingTimeInMillis(): number; awsRequestId: string;
  functionName: string }) => Promise<unknown>;

/** A Lambda handler served to the runner, with a Lambda-like context. */
function asLocal(name: string, handler: LambdaHandler): LocalHandler {
  return (input, context: LocalContext) => handler(input, {
    getRemainingTimeInMillis: () => context.getRemainingTimeInMillis(),
    awsRequestId: `${name}-request`,
    functionName: `ghcr-backup-${name}`,
  });
}

beforeAll(async () => {
  requireBinaries();
  const layout = await createLayout();
  [dynalite, source, target] = await Promise.all([
    startDynalite(),
    startRegistry({ auth: 'token', name: 'ghcr',
      users: [{ username: 'ghcr-backup', password: DEFAULT_TOKEN }] }),
    startRegistry({ auth: 'htpasswd', name: 'target' }),
  ]);
  const shared = await layout.imagesSharingBase({ refs: ['web', 'worker'] });
  images = shared.images;
  await Promise.all([
    pushFixture(images[0]!, source, 'acme/web:1.0.0'),
    pushFixture(images[1]!, source, 'acme/worker:main'),
  ]);
  api = await startGitHubApi({ maxPerPage: 1, fixtures: {
    owner: 'acme', kind: 'org', packages: [
      { name: 'web', versions: [
        { digest: images[0]!.digest, tags: ['1.0.0'] }] },
      { name: 'worker', versions: [
        { digest: images[1]!.digest, tags: ['main'] }] },
    ] } });

  secrets.on(GetSecretValueCommand, { SecretId: TOKEN_ARN })
    .resolves({ SecretString: DEFAULT_TOKEN });
  secrets.on(GetSecretValueCommand, { SecretId: TARGET_ARN })
    .resolves({ SecretString: JSON.stringify(target.credentials) });

  // what the stack sets, plus what points the SDK at dynalite
  Object.assign(process.env, {
    TABLE_NAME: dynalite.tableName,
    GITHUB_TOKEN_SECRET_ARN: TOKEN_ARN,
    TARGET_CREDENTIALS_SECRET_ARN: TARGET_ARN,
    SOURCE_REGISTRY: `http://${source.host}`,
    GITHUB_API: api.url,
    POWERTOOLS_SERVICE_NAME: 'ghcr-backup',
    POWERTOOLS_METRICS_NAMESPACE: 'GhcrBackup',
    POWERTOOLS_LOG_LEVEL: 'WARN',
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_ENDPOINT_URL_DYNAMODB: dynalite.endpoint,
  });

  // loaded now: each module starts its cold-start work when imported
  const [list, check, copy, summarize] = await Promise.all([
    import('../functions/list-and-select.js'),
    import('../functions/check-page.js'),
    import('../functions/copy-image.js'),
    import('../functions/summarize.js'),
  ]);
  listHandler = list.handler;
  handlers = {
    ListAndSelect: asLocal('ListAndSelect', list.handler),
    CheckPage: asLocal('CheckPage', check.handler),
    CopyImage: asLocal('CopyImage', copy.handler),
    RecordCopyFailure: asLocal('CopyImage', copy.handler),
    Summarize: asLocal('Summarize', summarize.handler),
  };
});

afterAll(async () => {
  secrets.restore();
  await api?.close();
  await stopAll();
});

/** Runs the workflow and returns its summary and what went to stdout. */
async function backup(): Promise<{ summary: RunSummary; stdout: string }> {
  let stdout = '';
  const write = vi.spyOn(process.stdout, 'write')
    .mockImplementation((chunk: string | Uint8Array) => {
      stdout += chunk.toString();
      return true;
    });
  try {
    const report = await runWorkflowLocally({ org: 'acme',
      target: `http://${target.host}/mirror`, concurrency: 1 }, {
      definition: synthesizeWorkflowDefinition(),
      handlers,
    });
    expect(report.error).toBeUndefined();
    return { summary: report.output as RunSummary, stdout };
  } finally {
    write.mockRestore();
  }
}

/** The secrets asked for so far, by ARN. */
function secretsAsked(): string[] {
  return secrets.commandCalls(GetSecretValueCommand)
    .map((call) => call.args[0].input.SecretId!);
}

/** The embedded-metrics documents among the lines written. */
function metricDocuments(stdout: string): Record<string, any>[] {
  return stdout.split('\n').filter((line) => line.includes('"_aws"'))
    .map((line) => JSON.parse(line) as Record<string, any>);
}

describe('the Lambda handlers with DynamoDB stores', () => {
  it('back up the org and remember runs and blobs in DynamoDB',
    async () => {
      // Act
      const { summary } = await backup();

      // Assess
      expect(summary).toMatchObject({ succeeded: true,
        images: { total: 2, copied: 2, upToDate: 0, failed: 0 } });
      expect(summary.blobs.mounted).toBeGreaterThan(0);
      expect(await manifestStatus(target, 'mirror/web', '1.0.0')).toBe(200);
      expect(await manifestStatus(target, 'mirror/worker', 'main'))
        .toBe(200);

      const runs = new DynamoDbRunStore({ client: dynalite.client,
        tableName: dynalite.tableName });
      const info = await runs.getRunInfo(summary.runId);
      expect(info?.summary).toMatchObject({ succeeded: true });
      const mirror = `http://${target.host}/mirror`;
      expect(await runs.getInventory(inventoryKey({ org: 'acme',
        target: mirror }, mirror)))
        .toEqual(new Map([['web', ['1.0.0']], ['worker', ['main']]]));

      const digests = new DynamoDbDigestStore({ client: dynalite.client,
        tableName: dynalite.tableName });
      const base = images[0]!.layers![0]!.digest;
      expect(await digests.locate(target.host, base))
        .toEqual(expect.arrayContaining(['mirror/web', 'mirror/worker']));
    });

  it('read their secrets at cold start, not on each invocation',
    async () => {
      // Prepare: the first backup started every function
      const started = secretsAsked();

      // Act
      await backup();

      // Assess
      expect(new Set(started)).toEqual(new Set([TOKEN_ARN, TARGET_ARN]));
      expect(secretsAsked()).toEqual(started);
    });

  it('emit the run\'s metrics as embedded metrics', async () => {
    // Act: an unchanged rerun
    const { summary, stdout } = await backup();

    // Assess
    expect(summary.images).toMatchObject({ copied: 0, upToDate: 2 });
    const [document, ...others] = metricDocuments(stdout);
    expect(others).toEqual([]);
    expect(document!._aws.CloudWatchMetrics[0]).toMatchObject({
      Namespace: 'GhcrBackup', Dimensions: [['service']] });
    expect(document).toMatchObject({ service: 'ghcr-backup',
      ImagesCopied: 0, ImagesUpToDate: 2, ImagesFailed: 0,
      ImagesGoneFromSource: 0, BytesUploaded: 0, BlobsUploaded: 0,
      BlobsMounted: 0, BlobsSkipped: 0, BackupSucceeded: 1 });
  });
});

describe('each Lambda function\'s cold start', () => {
  const expected: Record<StepName, string[]> = {
    listAndSelect: [TOKEN_ARN, TARGET_ARN],
    checkPage: [TARGET_ARN],
    copyImage: [TOKEN_ARN, TARGET_ARN],
    summarize: [],
  };
  for (const [step, arns] of Object.entries(expected)) {
    it(`reads only the secrets ${step} uses`, async () => {
      // Prepare: the environment names both secrets, as a test's may
      secrets.resetHistory();

      // Act
      await createRuntime({ uses: STEP_SECRETS[step as StepName] });

      // Assess
      expect(secretsAsked().sort()).toEqual([...arns].sort());
    });
  }

  it('reports a secret without a value with the command that puts one',
    async () => {
      // Prepare: the token secret as the stack creates it, and a
      // container starting afresh
      secrets.on(GetSecretValueCommand, { SecretId: TOKEN_ARN }).rejects(
        new ResourceNotFoundException({ $metadata: {},
          message: 'Secrets Manager can\'t find the specified secret ' +
            'value for staging label: AWSCURRENT' }));
      resetRuntime();
      // errors go to stderr
      let stderr = '';
      const write = vi.spyOn(process.stderr, 'write')
        .mockImplementation((chunk: string | Uint8Array) => {
          stderr += chunk.toString();
          return true;
        });

      try {
        // Act
        const act = listHandler({ org: 'acme',
          target: `http://${target.host}/mirror` }, {
          getRemainingTimeInMillis: () => 60_000,
          awsRequestId: 'cold-start', functionName: 'ghcr-backup-list' });

        // Assess: in the error Step Functions sees, and in the log
        const command = 'aws secretsmanager put-secret-value --secret-id ' +
          `${TOKEN_ARN} --secret-string "$GITHUB_TOKEN"`;
        await expect(act).rejects.toThrow(NotFoundError);
        await expect(act).rejects.toThrow(`secret ${TOKEN_ARN} has no ` +
          `value yet (ResourceNotFoundException); put one with: ${command}`);
        const logged = stderr.split('\n').filter(Boolean)
          .map((line) => JSON.parse(line) as Record<string, any>);
        expect(logged).toEqual([expect.objectContaining({
          level: 'ERROR', message: 'step failed', state: 'ListAndSelect',
          error: expect.objectContaining({ name: 'NotFoundError',
            message: expect.stringContaining(command) }) })]);
      } finally {
        write.mockRestore();
        secrets.on(GetSecretValueCommand, { SecretId: TOKEN_ARN })
          .resolves({ SecretString: DEFAULT_TOKEN });
        resetRuntime();
      }
    });
});
