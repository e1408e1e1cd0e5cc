import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { App, Duration, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';

import {
  METRIC_NAMES,
} from '../functions/common/metrics.js';
import {
  METRICS_NAMESPACE as HANDLER_NAMESPACE,
  SERVICE_NAME as HANDLER_SERVICE,
} from '../functions/common/runtime.js';
import { RUN_METRICS } from '../infra/monitoring.js';
import {
  BackupStack, type BackupStackProps, METRICS_NAMESPACE, SERVICE_NAME,
} from '../infra/stack.js';
import { makeTempDir, removeDir, runCommand } from './harness/process.js';

const ECR_TARGET = '123456789012.dkr.ecr.eu-west-1.amazonaws.com/ghcr';

/** A fresh app per test; bundling is skipped, the template is complete. */
function synth(props: BackupStackProps = {},
  context: Record<string, unknown> = {}) {
  const app = new App({
    context: { 'aws:cdk:bundling-stacks': [], ...context },
  });
  const stack = new BackupStack(app, 'Backup', {
    org: 'acme', target: ECR_TARGET, ...props,
  });
  return { app, stack, template: Template.fromStack(stack) };
}

function resourcesOf(template: Template, type: string) {
  return Object.values(template.findResources(type)) as {
    Properties: Record<string, any> }[];
}

/** Every Allow statement of every IAM policy, by the policy's logical id. */
function statements(template: Template) {
  return Object.entries(template.findResources('AWS::IAM::Policy'))
    .flatMap(([id, policy]) =>
      (policy.Properties.PolicyDocument.Statement as any[])
        .map((statement) => ({
          policy: id,
          actions: [statement.Action].flat() as string[],
          resources: [statement.Resource].flat() as unknown[],
        })));
}

function policyOfRole(template: Template, rolePrefix: string) {
  return statements(template).filter((s) => s.policy.startsWith(rolePrefix));
}

/** The secrets a role may read, by the secret's construct id, sorted. */
function secretsReadBy(template: Template, rolePrefix: string): string[] {
  return policyOfRole(template, rolePrefix)
    .filter((s) => s.actions.includes('secretsmanager:GetSecretValue'))
    .flatMap((s) => s.resources)
    .map((resource) => (resource as { Ref: string }).Ref
      .replace(/[0-9A-F]{8}$/, ''))
    .sort();
}

/** The *_SECRET_ARN variables of each function, by its construct id. */
function secretVariablesOf(template: Template): Record<string, string[]> {
  const functions = Object.entries(
    template.findResources('AWS::Lambda::Function'));
  return Object.fromEntries(functions.map(([id, fn]) => [
    id.replace(/[0-9A-F]{8}$/, ''),
    Object.keys(fn.Properties.Environment.Variables as object)
      .filter((name) => name.endsWith('_SECRET_ARN')).sort(),
  ]));
}

function settingsError(props: BackupStackProps,
  context: Record<string, unknown> = {}): string {
  try {
    synth(props, context);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected the stack to refuse these settings');
}

describe('BackupStack', () => {
  describe('schedule', () => {
    it('starts the workflow daily at 03:00 UTC with the configured input',
      () => {
        const { template } = synth();

        const [schedule] = resourcesOf(template, 'AWS::Scheduler::Schedule');
        expect(schedule!.Properties).toMatchObject({
          ScheduleExpression: 'cron(0 3 * * ? *)',
          ScheduleExpressionTimezone: 'UTC',
          State: 'ENABLED',
          Target: { Arn: { Ref: expect.stringMatching(/StateMachine/) } },
        });
        expect(JSON.parse(schedule!.Properties.Target.Input)).toEqual({
          org: 'acme', target: ECR_TARGET,
        });
      });

    it('takes the expression, time zone and selection from CDK context',
      () => {
        const app = new App({ context: {
          'aws:cdk:bundling-stacks': [],
          user: 'octocat', target: 'registry.example.com/backup',
          schedule: 'rate(12 hours)', timeZone: 'Europe/Berlin',
          packages: '^app-', excludeTags: '-rc', allVersions: 'true',
          concurrency: '8',
        } });
        const stack = new BackupStack(app, 'Backup');
        const template = Template.fromStack(stack);

        const [schedule] = resourcesOf(template, 'AWS::Scheduler::Schedule');
        expect(schedule!.Properties.ScheduleExpression).toBe('rate(12 hours)');
        expect(schedule!.Properties.ScheduleExpressionTimezone)
          .toBe('Europe/Berlin');
        expect(JSON.parse(schedule!.Properties.Target.Input)).toEqual({
          user: 'octocat', target: 'registry.example.com/backup',
          packages: '^app-', excludeTags: '-rc', allVersions: true,
          concurrency: 8,
        });
      });

    it('lets the scheduler role start only this state machine', () => {
      const { template } = synth();

      const scheduler = statements(template)
        .filter((s) => s.policy.startsWith('SchedulerRole'));
      expect(scheduler).toEqual([{
        policy: expect.any(String),
        actions: ['states:StartExecution'],
        resources: [{ Ref: expect.stringMatching(/StateMachine/) }],
      }]);
    });
  });

  describe('workflow', () => {
    it('is a Standard state machine that logs every event and is traced',
      () => {
        const { template } = synth();

        template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
          StateMachineType: 'STANDARD',
          LoggingConfiguration: { Level: 'ALL',
            Destinations: [Match.anyValue()] },
          TracingConfiguration: { Enabled: true },
        });
      });

    it('runs each step as a Node 22 arm64 function with JSON logs', () => {
      const { template } = synth();

      const functions = resourcesOf(template, 'AWS::Lambda::Function');
      expect(functions).toHaveLength(4);
      for (const fn of functions) {
        expect(fn.Properties).toMatchObject({
          Runtime: 'nodejs22.x',
          Architectures: ['arm64'],
          LoggingConfig: { LogFormat: 'JSON',
            LogGroup: { Ref: expect.any(String) } },
        });
        expect(fn.Properties.Environment.Variables).toMatchObject({
          POWERTOOLS_SERVICE_NAME: 'ghcr-backup',
          POWERTOOLS_METRICS_NAMESPACE: 'GhcrBackup',
          TABLE_NAME: { Ref: expect.stringMatching(/^Table/) },
        });
      }
    });

    it('gives the copy function the Lambda maximum of 15 minutes', () => {
      const { stack } = synth();

      expect(stack.functions.copyImage.timeout?.toMinutes()).toBe(15);
    });

    it('keeps each function\'s logs for the configured retention', () => {
      const { template } = synth({ logRetentionDays: 30 });

      const groups = resourcesOf(template, 'AWS::Logs::LogGroup');
      expect(groups).toHaveLength(5);
      for (const group of groups) {
        expect(group.Properties.RetentionInDays).toBe(30);
      }
    });
  });

  describe('table', () => {
    it('is on demand, with point-in-time recovery and a TTL attribute',
      () => {
        const { template } = synth();

        template.hasResourceProperties('AWS::DynamoDB::Table', {
          BillingMode: 'PAY_PER_REQUEST',
          KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' },
            { AttributeName: 'sk', KeyType: 'RANGE' }],
          PointInTimeRecoverySpecification: {
            PointInTimeRecoveryEnabled: true },
          TimeToLiveSpecification: { AttributeName: 'expiresAt',
            Enabled: true },
        });
      });
  });

  describe('secrets', () => {
    it('creates the GitHub token secret without a value', () => {
      const { template } = synth();

      const secrets = resourcesOf(template, 'AWS::SecretsManager::Secret');
      expect(secrets).toHaveLength(1);
      expect(secrets[0]!.Properties.Name).toBe('Backup/github-token');
      expect(secrets[0]!.Properties).not.toHaveProperty('SecretString');
      expect(secrets[0]!.Properties)
        .not.toHaveProperty('GenerateSecretString');
    });

    it('creates a target credentials secret for a registry other than ECR',
      () => {
        const { template } = synth({ target: 'registry.example.com' });

        const names = resourcesOf(template, 'AWS::SecretsManager::Secret')
          .map((s) => s.Properties.Name);
        expect(names.sort()).toEqual(['Backup/github-token',
          'Backup/target-credentials']);
      });

    it('puts no secret value in any function\'s environment', () => {
      const { template } = synth({ target: 'registry.example.com' });

      for (const fn of resourcesOf(template, 'AWS::Lambda::Function')) {
        const variables = fn.Properties.Environment.Variables as
          Record<string, unknown>;
        for (const [name, value] of Object.entries(variables)) {
          const text = JSON.stringify(value);
          expect(text, name).not.toMatch(/resolve:secretsmanager/);
          if (/Secret|Token|Credentials/.test(text)) {
            // only the secret's ARN: a Ref to the secret resource
            expect(name).toMatch(/_SECRET_ARN$/);
            expect(value).toEqual({ Ref: expect.any(String) });
          }
        }
      }
      expect(JSON.stringify(template.toJSON()))
        .not.toMatch(/SecretString|resolve:secretsmanager/);
    });

    it('uses an existing secret by name, with the ARN suffix wildcard',
      () => {
        const { template } = synth({ githubTokenSecret: 'ci/ghcr-token' });

        expect(resourcesOf(template, 'AWS::SecretsManager::Secret'))
          .toHaveLength(0);
        const grants = statements(template).filter((s) =>
          s.actions.includes('secretsmanager:GetSecretValue'));
        expect(grants.length).toBeGreaterThan(0);
        for (const grant of grants) {
          expect(JSON.stringify(grant.resources))
            .toMatch(/:secret:ci\/ghcr-token-\?{6}"/);
        }
      });
  });

  describe('permissions', () => {
    it('uses "*" only for actions that have no resource level', () => {
      const { template } = synth();

      const anywhere = statements(template)
        .filter((s) => s.resources.includes('*'))
        .flatMap((s) => s.actions);
      const noResourceLevel = [/^ecr:GetAuthorizationToken$/, /^xray:\w+$/,
        /^logs:\w*(Deliver|ResourcePolic|LogGroups)\w*$/];
      for (const action of anywhere) {
        expect(noResourceLevel.some((pattern) => pattern.test(action)),
          action).toBe(true);
      }
      const logsAnywhere = statements(template).filter((s) =>
        s.resources.includes('*') && s.actions.some((a) =>
          a.startsWith('logs:')));
      expect(logsAnywhere.every((s) => s.policy.startsWith('Workflow')))
        .toBe(true);
    });

    it('scopes ECR pushes to repositories under the target path', () => {
      const { template } = synth();

      const copy = policyOfRole(template, 'CopyImageRole');
      const push = copy.find((s) => s.actions.includes('ecr:PutImage'));
      expect(push?.actions).toEqual(expect.arrayContaining([
        'ecr:InitiateLayerUpload', 'ecr:UploadLayerPart',
        'ecr:CompleteLayerUpload', 'ecr:CreateRepository']));
      expect(JSON.stringify(push?.resources)).toBe(JSON.stringify([{
        'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' },
          ':ecr:eu-west-1:123456789012:repository/ghcr/*']] }]));
    });

    it('lets only the copy function write to the target', () => {
      const { template } = synth();

      const writes = statements(template).filter((s) =>
        s.actions.some((a) => /ecr:(PutImage|CreateRepository|Upload)/
          .test(a)));
      expect(writes.map((s) => s.policy))
        .toEqual([expect.stringMatching(/^CopyImageRole/)]);

      // the listing's one manifest HEAD and the page checks only read
      for (const role of ['ListAndSelectRole', 'CheckPageRole']) {
        const reads = policyOfRole(template, role)
          .flatMap((s) => s.actions).filter((a) => a.startsWith('ecr:'));
        expect(reads.sort(), role).toEqual([
          'ecr:BatchCheckLayerAvailability', 'ecr:BatchGetImage',
          'ecr:GetAuthorizationToken', 'ecr:GetDownloadUrlForLayer']);
      }
      expect(policyOfRole(template, 'SummarizeRole').flatMap((s) => s.actions)
        .filter((a) => a.startsWith('ecr:'))).toEqual([]);
    });

    it('grants ECR nothing when the target is another registry', () => {
      const { template } = synth({ target: 'registry.example.com/backup' });

      expect(statements(template).flatMap((s) => s.actions)
        .filter((a) => a.startsWith('ecr:'))).toEqual([]);
    });

    it('lets the functions read only the backup\'s own secrets', () => {
      const { template } = synth({ target: 'registry.example.com' });

      const read = statements(template).filter((s) =>
        s.actions.some((a) => a.startsWith('secretsmanager:')));
      expect(read.length).toBeGreaterThan(0);
      for (const statement of read) {
        expect(statement.actions).toEqual(['secretsmanager:GetSecretValue']);
        expect(statement.resources).toEqual([{ Ref: expect.stringMatching(
          /^(GithubToken|TargetCredentials)[0-9A-F]{8}$/) }]);
      }
    });

    it('lets each function read only the secrets its step uses', () => {
      const { template } = synth({ target: 'registry.example.com' });

      // listing and pulling need the token, the target's HEADs and pushes
      // its credentials; totals need neither
      expect(secretsReadBy(template, 'ListAndSelectRole'))
        .toEqual(['GithubToken', 'TargetCredentials']);
      expect(secretsReadBy(template, 'CheckPageRole'))
        .toEqual(['TargetCredentials']);
      expect(secretsReadBy(template, 'CopyImageRole'))
        .toEqual(['GithubToken', 'TargetCredentials']);
      expect(secretsReadBy(template, 'SummarizeRole')).toEqual([]);
      expect(policyOfRole(template, 'SummarizeRole').flatMap((s) =>
        s.actions)).not.toContain('secretsmanager:GetSecretValue');
    });

    it('lets no function read a secret for an ECR target but the token',
      () => {
        const { template } = synth();

        expect(secretsReadBy(template, 'ListAndSelectRole'))
          .toEqual(['GithubToken']);
        expect(secretsReadBy(template, 'CheckPageRole')).toEqual([]);
        expect(secretsReadBy(template, 'CopyImageRole'))
          .toEqual(['GithubToken']);
        expect(secretsReadBy(template, 'SummarizeRole')).toEqual([]);
      });

    it('tells each function the ARNs of only the secrets it reads', () => {
      const { template } = synth({ target: 'registry.example.com' });

      expect(secretVariablesOf(template)).toEqual({
        ListAndSelect: ['GITHUB_TOKEN_SECRET_ARN',
          'TARGET_CREDENTIALS_SECRET_ARN'],
        CheckPage: ['TARGET_CREDENTIALS_SECRET_ARN'],
        CopyImage: ['GITHUB_TOKEN_SECRET_ARN',
          'TARGET_CREDENTIALS_SECRET_ARN'],
        Summarize: [],
      });
    });

    it('gives every function a role of its own, limited to its table ' +
      'actions and log group', () => {
      const { template } = synth();

      // only the copy deletes (a blob location whose mount was refused)
      const deleters = statements(template).filter((s) =>
        s.actions.includes('dynamodb:DeleteItem'));
      expect(deleters.map((s) => s.policy))
        .toEqual([expect.stringMatching(/^CopyImageRole/)]);

      const roles = resourcesOf(template, 'AWS::IAM::Role').filter((r) =>
        JSON.stringify(r.Properties.AssumeRolePolicyDocument)
          .includes('lambda.amazonaws.com'));
      expect(roles).toHaveLength(4);
      for (const role of roles) {
        expect(role.Properties.ManagedPolicyArns).toBeUndefined();
      }

      for (const statement of statements(template)) {
        if (!statement.actions.some((a) => a.startsWith('dynamodb:'))) {
          continue;
        }
        expect(statement.actions.every((a) =>
          /^dynamodb:(Query|PutItem|BatchWriteItem|DeleteItem)$/
            .test(a))).toBe(true);
        expect(statement.resources).toEqual([
          { 'Fn::GetAtt': [expect.stringMatching(/^Table/), 'Arn'] }]);
      }
    });
  });

  describe('alarms', () => {
    it('go off on failed, timed-out and aborted executions', () => {
      const { template } = synth();

      for (const metric of ['ExecutionsFailed', 'ExecutionsTimedOut',
        'ExecutionsAborted']) {
        template.hasResourceProperties('AWS::CloudWatch::Alarm', {
          Namespace: 'AWS/States',
          MetricName: metric,
          Dimensions: [{ Name: 'StateMachineArn',
            Value: { Ref: Match.stringLikeRegexp('StateMachine') } }],
          Statistic: 'Sum',
          Threshold: 1,
          ComparisonOperator: 'GreaterThanOrEqualToThreshold',
          TreatMissingData: 'notBreaching',
          AlarmActions: [{ Ref: Match.stringLikeRegexp('AlarmTopic') }],
        });
      }
    });

    it('go off when no backup succeeded for twice the schedule period',
      () => {
        const daily = synth().template;
        const twiceDaily = synth({ schedule: 'rate(12 hours)' }).template;

        const stale = (template: Template) => resourcesOf(template,
          'AWS::CloudWatch::Alarm').find((a) =>
          a.Properties.MetricName === 'ExecutionsSucceeded')!.Properties;
        expect(stale(daily)).toMatchObject({
          Namespace: 'AWS/States',
          Statistic: 'Sum',
          Period: 2 * 86_400,
          EvaluationPeriods: 1,
          Threshold: 1,
          ComparisonOperator: 'LessThanThreshold',
          TreatMissingData: 'breaching',
        });
        expect(stale(twiceDaily).Period).toBe(86_400);
      });

    it('keep every window within CloudWatch\'s 7-day limit', () => {
      const { template } = synth({ schedule: 'rate(3 days)' });

      const alarms = resourcesOf(template, 'AWS::CloudWatch::Alarm');
      for (const alarm of alarms) {
        const { Period, EvaluationPeriods } = alarm.Properties;
        expect(Period * EvaluationPeriods).toBeLessThanOrEqual(604_800);
      }
    });

    it('go off on errors of each function', () => {
      const { template } = synth();

      const errors = resourcesOf(template, 'AWS::CloudWatch::Alarm')
        .filter((a) => a.Properties.MetricName === 'Errors');
      expect(errors).toHaveLength(4);
      for (const alarm of errors) {
        expect(alarm.Properties).toMatchObject({
          Namespace: 'AWS/Lambda', Threshold: 1,
          Dimensions: [{ Name: 'FunctionName',
            Value: { Ref: expect.any(String) } }],
        });
      }
    });

    it('notify an e-mail address only when one is given', () => {
      expect(resourcesOf(synth().template, 'AWS::SNS::Subscription'))
        .toHaveLength(0);

      const { template } = synth({ alarmEmail: 'ops@example.com' });
      template.hasResourceProperties('AWS::SNS::Subscription', {
        Protocol: 'email', Endpoint: 'ops@example.com',
      });
    });
  });

  it('shows runs, images, bytes and failures on a dashboard', () => {
    const { template } = synth();

    const [dashboard] = resourcesOf(template, 'AWS::CloudWatch::Dashboard');
    const body = JSON.stringify(dashboard!.Properties.DashboardBody);
    for (const text of ['ExecutionsSucceeded', 'ImagesCopied',
      'ImagesFailed', 'BytesUploaded', 'BlobsMounted', 'GhcrBackup',
      'ghcr-backup']) {
      expect(body).toContain(text);
    }
  });

  it('reads the metrics by the names and dimension the handlers emit',
    () => {
      expect(Object.values(RUN_METRICS).sort())
        .toEqual([...METRIC_NAMES].sort());
      expect(METRICS_NAMESPACE).toBe(HANDLER_NAMESPACE);
      expect(SERVICE_NAME).toBe(HANDLER_SERVICE);
    });

  it('outputs the state machine, table, secret and console link', () => {
    const { template } = synth();

    const outputs = Object.keys(template.findOutputs('*'));
    expect(outputs).toEqual(expect.arrayContaining(['StateMachineArn',
      'TableName', 'GithubTokenSecretArn', 'ConsoleUrl', 'AlarmTopicArn']));
  });

  describe('settings validation', () => {
    it('asks for the org and the target when they are missing', () => {
      const message = settingsError({ org: undefined, target: undefined });

      expect(message).toContain('org is missing: pass -c org=NAME');
      expect(message).toContain('target is missing: pass -c target=');
    });

    it('refuses both org and user', () => {
      expect(settingsError({ user: 'octocat' }))
        .toContain('both org and user are set');
    });

    it('names each invalid value and how to fix it', () => {
      const message = settingsError({
        target: 'not-a-host', schedule: 'daily',
        timeZone: 'Mars/Olympus', alarmEmail: 'ops', packages: '(',
        concurrency: 0, githubTokenSecret: 'no spaces allowed',
        logRetentionDays: 8,
      });

      for (const expected of [
        'target "not-a-host" is not [http://]HOST[:PORT][/PATH]',
        'schedule "daily" is neither rate(N unit) nor cron(',
        'timeZone "Mars/Olympus" is not an IANA time zone',
        'alarmEmail "ops" is not an e-mail address',
        'packages is not a valid regular expression',
        'concurrency "0" must be a whole number from 1 to 64',
        'githubTokenSecret "no spaces allowed" is neither',
        'logRetentionDays "8" is not a retention',
      ]) {
        expect(message).toContain(expected);
      }
    });

    it('refuses a weekly schedule, whose staleness window would exceed ' +
      'what CloudWatch can evaluate', () => {
      expect(settingsError({ schedule: 'cron(0 3 ? * MON *)' }))
        .toContain('longer than the 7 days CloudWatch can evaluate');
    });

    it('accepts a schedule without a fixed period given a maxBackupAge',
      () => {
        const { template } = synth({ schedule: 'cron(0 3 ? * MON,THU *)',
          maxBackupAge: Duration.days(5) });

        const stale = resourcesOf(template, 'AWS::CloudWatch::Alarm').find(
          (a) => a.Properties.MetricName === 'ExecutionsSucceeded')!;
        expect(stale.Properties.Period).toBe(5 * 86_400);
      });

    it('asks for maxBackupAge when the schedule has no fixed period', () => {
      expect(settingsError({ schedule: 'cron(0 3,15 * * ? *)' }))
        .toContain('set maxBackupAge (-c maxBackupAge=2d)');
    });

    it('refuses a maxBackupAge no longer than the schedule period', () => {
      expect(settingsError({ maxBackupAge: Duration.hours(24) }))
        .toContain('is not longer than the schedule\'s period');
    });

    it('refuses plain HTTP to ECR', () => {
      expect(settingsError({ target: `http://${ECR_TARGET}` }))
        .toContain('ECR is only reachable over HTTPS');
    });

    it('reads a maxBackupAge from context', () => {
      const { template } = synth({}, { maxBackupAge: '36h' });

      const stale = resourcesOf(template, 'AWS::CloudWatch::Alarm').find((a) =>
        a.Properties.MetricName === 'ExecutionsSucceeded')!;
      expect(stale.Properties.Period).toBe(36 * 3600);
    });
  });

  describe('cdk-nag AwsSolutions pack', () => {
    for (const [label, props] of [
      ['an ECR target', {}],
      ['another registry, secrets known by name', {
        target: 'registry.example.com/backup',
        githubTokenSecret: 'ci/ghcr-token',
        targetCredentialsSecret: 'ci/registry',
        alarmEmail: 'ops@example.com',
      }],
    ] as const) {
      it(`passes, every remaining finding acknowledged, for ${label}`,
        () => {
          const app = new App({
            context: { 'aws:cdk:bundling-stacks': [] },
          });
          const stack = new BackupStack(app, 'Backup', {
            org: 'acme', target: ECR_TARGET, ...props,
          });
          Validations.of(app).addPlugins(new AwsSolutionsChecks(app));

          // the pack reports violations by failing the synth
          expect(() => app.synth()).not.toThrow();
          Annotations.fromStack(stack).hasNoError('*', Match.anyValue());
        });
    }
  });

  describe('npx cdk synth', () => {
    it('bundles every handler with the local esbuild, offline, without ' +
      'AWS credentials', async () => {
      const root = join(dirname(fileURLToPath(import.meta.url)), '..');
      const bin = join(root, 'node_modules', '.bin');
      const out = await makeTempDir('synth');
      try {
        // no AWS variable, no profile, no instance metadata: like CI
        const env = {
          PATH: `${bin}:${process.env.PATH}`,
          HOME: out,
          AWS_EC2_METADATA_DISABLED: 'true',
          CDK_DISABLE_CLI_TELEMETRY: 'true',
        };
        await runCommand(join(bin, 'cdk'), ['synth', '--quiet',
          '--no-notices', '-o', out, '-c', 'org=acme',
          '-c', `target=${ECR_TARGET}`], { env, timeoutMs: 180_000 });

        const template = JSON.parse(await readFile(
          join(out, 'GhcrBackup.template.json'), 'utf8'));
        const functions = Object.values(template.Resources as
          Record<string, { Type: string }>)
          .filter((r) => r.Type === 'AWS::Lambda::Function');
        expect(functions).toHaveLength(4);

        // each bundle loads as an ES module and exports its handler
        const assets = (await readdir(out))
          .filter((name) => name.startsWith('asset.'));
        expect(assets).toHaveLength(4);
        for (const asset of assets) {
          const bundle = join(out, asset, 'index.mjs');
          const { stdout } = await runCommand(join(bin, 'node'), [
            '--input-type=module', '-e',
            `const m = await import(${JSON.stringify(bundle)}); ` +
            'process.stdout.write(typeof m.handler);'],
          { env: { ...env, AWS_REGION: 'eu-west-1', TABLE_NAME: 'table',
            GITHUB_TOKEN_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:' +
              '123456789012:secret:token' } });
          expect(stdout.toString(), asset).toBe('function');
        }
      } finally {
        await removeDir(out);
      }
    });
  });
});
