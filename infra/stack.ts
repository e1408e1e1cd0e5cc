// The deployed backup: the workflow and its functions, the table they
// remember in, the secrets they read, the schedule that starts a run, and
// the alarms and dashboard that say whether runs still succeed.

import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  CfnOutput,
  Duration,
  RemovalPolicy,
  Stack,
  TimeZone,
  Validations,
} from 'aws-cdk-lib';
import { AttributeType, BillingMode, Table } from 'aws-cdk-lib/aws-dynamodb';
import {
  CfnPolicy,
  Effect,
  PolicyStatement,
  Role,
  ServicePrincipal,
} from 'aws-cdk-lib/aws-iam';
import {
  ApplicationLogLevel,
  Architecture,
  LoggingFormat,
  Runtime,
  SystemLogLevel,
} from 'aws-cdk-lib/aws-lambda';
import {
  type BundlingOptions,
  NodejsFunction,
  OutputFormat,
} from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup } from 'aws-cdk-lib/aws-logs';
import {
  Schedule,
  ScheduleExpression,
  ScheduleTargetInput,
} from 'aws-cdk-lib/aws-scheduler';
import { StepFunctionsStartExecution } from 'aws-cdk-lib/aws-scheduler-targets';
import {
  CfnSecret,
  type ISecret,
  Secret,
} from 'aws-cdk-lib/aws-secretsmanager';
import { LogLevel, type StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';

import {
  type SecretName,
  STEP_SECRETS,
  type StepName,
} from '../functions/common/step-secrets.js';
import { tableSchema } from '../functions/lib/store/dynamodb-schema.js';
import { BackupMonitoring } from './monitoring.js';
import {
  type BackupSettings,
  type BackupStackProps,
  resolveSettings,
  scheduledInput,
} from './settings.js';
import { BackupWorkflow } from './workflow.js';

export type { BackupStackProps } from './settings.js';

/** The `service` dimension and log field of everything the stack runs. */
export const SERVICE_NAME = 'ghcr-backup';
/** The CloudWatch namespace of the run metrics Summarize emits. */
export const METRICS_NAMESPACE = 'GhcrBackup';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The workflow's steps, by the label used in construct ids and alarms. */
type Step = StepName;

interface StepSpec {
  /** Handler file under functions/. */
  entry: string;
  description: string;
  memoryMiB: number;
  timeout: Duration;
  /** The table actions its stores call (BatchWriteItem also deletes). */
  tableActions: string[];
  /** How it uses the target registry. */
  target: 'none' | 'read' | 'write';
  /**
   * The secrets its handler reads at cold start: its role may read these
   * and no others, and only their ARNs are in its environment.
   */
  secrets: readonly SecretName[];
}

// Memory buys CPU and network on Lambda (1,769 MiB is one full vCPU);
// timeouts leave each step room for an org of 50,000 tags.
const STEPS: Record<Step, StepSpec> = {
  listAndSelect: {
    entry: 'list-and-select.ts',
    description: 'Lists the packages and versions on GitHub, selects ' +
      'the tags to back up, stores the plan in pages',
    // the whole listing is in memory while it is selected and paged:
    // 50,000 versions with tags are tens of MiB of objects
    memoryMiB: 1024,
    // one API request per 100 versions, sequential per package, plus
    // rate-limit waits; the step cannot be continued, so give it all
    timeout: Duration.minutes(15),
    // inventory read; plan pages and the run record written
    tableActions: ['dynamodb:Query', 'dynamodb:PutItem',
      'dynamodb:BatchWriteItem'],
    // one manifest HEAD checks that the target takes our credentials
    // before the work fans out
    target: 'read',
    secrets: STEP_SECRETS.listAndSelect,
  },
  checkPage: {
    entry: 'check-page.ts',
    description: 'Checks one plan page\'s tags on the target with one ' +
      'manifest HEAD each',
    // waits on the network, small documents: little memory does
    memoryMiB: 512,
    // a page of 500 tags, 16 HEADs at a time, is well under a minute
    timeout: Duration.minutes(5),
    // run record and plan page read; up-to-date results written
    tableActions: ['dynamodb:Query', 'dynamodb:PutItem'],
    target: 'read',
    secrets: STEP_SECRETS.checkPage,
  },
  copyImage: {
    entry: 'copy-image.ts',
    description: 'Copies one image from the source to the target, ' +
      'continuing where an earlier invocation stopped',
    // streams blobs and hashes them on the way (sha256); 2 GiB is a bit
    // more than one vCPU, which keeps hashing and TLS ahead of the
    // network, and more memory is also more network bandwidth
    memoryMiB: 2048,
    // the Lambda maximum; the handler stops starting work a margin before
    // it and the workflow continues the copy in a fresh invocation, so an
    // image of any size completes
    timeout: Duration.minutes(15),
    // plan page and blob locations read; results and locations written,
    // a refused mount's location deleted
    tableActions: ['dynamodb:Query', 'dynamodb:PutItem',
      'dynamodb:BatchWriteItem', 'dynamodb:DeleteItem'],
    target: 'write',
    secrets: STEP_SECRETS.copyImage,
  },
  summarize: {
    entry: 'summarize.ts',
    description: 'Totals the run\'s results, updates the inventory and ' +
      'emits the run metrics',
    // reads every result of the run (50,000 small items at most)
    memoryMiB: 1024,
    timeout: Duration.minutes(5),
    // results, plan and inventory read; inventory and record rewritten
    tableActions: ['dynamodb:Query', 'dynamodb:PutItem',
      'dynamodb:BatchWriteItem'],
    target: 'none',
    secrets: STEP_SECRETS.summarize,
  },
};

/**
 * The scheduled, monitored backup of one GitHub organisation (or user)
 * into a registry it controls. See BackupStackProps for the settings.
 */
export class BackupStack extends Stack {
  readonly settings: BackupSettings;
  readonly table: Table;
  readonly githubTokenSecret: ISecret;
  readonly targetCredentialsSecret?: ISecret;
  readonly functions: Record<Step, NodejsFunction>;
  readonly stateMachine: StateMachine;
  readonly schedule: Schedule;
  readonly monitoring: BackupMonitoring;

  constructor(scope: Construct, id: string, props: BackupStackProps = {}) {
    super(scope, id, props);
    const settings = resolveSettings(this, props);
    this.settings = settings;

    this.table = new Table(this, 'Table', {
      partitionKey: { name: tableSchema.partitionKey,
        type: AttributeType.STRING },
      sortKey: { name: tableSchema.sortKey, type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: {
        pointInTimeRecoveryEnabled: true,
      },
      timeToLiveAttribute: tableSchema.timeToLiveAttribute,
      // blob locations and inventories are worth keeping past a destroy
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.githubTokenSecret = this.secret('GithubToken',
      settings.githubTokenSecret, 'github-token',
      'A GitHub token with read:packages, as the plain secret string');
    if (settings.targetCredentialsSecret || !settings.ecr) {
      this.targetCredentialsSecret = this.secret('TargetCredentials',
        settings.targetCredentialsSecret, 'target-credentials',
        `Credentials for ${settings.target}, as JSON: ` +
        '{"username": "...", "password": "..."}');
    }

    this.functions = {} as Record<Step, NodejsFunction>;
    for (const [step, spec] of Object.entries(STEPS) as [Step, StepSpec][]) {
      this.functions[step] = this.handler(step, spec);
    }

    const workflowLogs = new LogGroup(this, 'WorkflowLogs', {
      // the vended-logs prefix keeps CloudWatch Logs' resource policy small
      logGroupName: `/aws/vendedlogs/states/${this.stackName}-backup`,
      retention: settings.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const workflow = new BackupWorkflow(this, 'Workflow', {
      ...this.functions,
      logs: { destination: workflowLogs, level: LogLevel.ALL,
        includeExecutionData: true },
      tracingEnabled: true,
    });
    this.stateMachine = workflow.stateMachine;

    this.schedule = new Schedule(this, 'Schedule', {
      description: `Backs up ${describeOwner(settings)} to ` +
        settings.target,
      schedule: ScheduleExpression.expression(settings.schedule,
        TimeZone.of(settings.timeZone)),
      target: new StepFunctionsStartExecution(this.stateMachine, {
        input: ScheduleTargetInput.fromObject(scheduledInput(settings)),
        // a start refused for a moment (throttling) is tried again;
        // the staleness alarm catches one that never starts
        retryAttempts: 3,
        maxEventAge: Duration.hours(1),
      }),
    });

    this.monitoring = new BackupMonitoring(this, 'Monitoring', {
      stateMachine: this.stateMachine,
      functions: this.functions,
      maxBackupAge: settings.maxBackupAge,
      alarmEmail: settings.alarmEmail,
      metricsNamespace: METRICS_NAMESPACE,
      serviceName: SERVICE_NAME,
    });

    this.outputs();
    this.acknowledgeNagFindings();
  }

  /** Imports a secret by name or ARN, or creates one without a value. */
  private secret(id: string, nameOrArn: string | undefined, suffix: string,
    description: string): ISecret {
    if (nameOrArn?.startsWith('arn:')) {
      // a complete ARN ends with "-" and six random characters
      return /-[A-Za-z0-9]{6}$/.test(nameOrArn)
        ? Secret.fromSecretCompleteArn(this, id, nameOrArn)
        : Secret.fromSecretPartialArn(this, id, nameOrArn);
    }
    if (nameOrArn) return Secret.fromSecretNameV2(this, id, nameOrArn);

    // Created without a value (no version yet): the person deploying puts
    // the real one with `aws secretsmanager put-secret-value`, so it never
    // passes through the template or the CDK app.
    const secret = new Secret(this, id, {
      secretName: `${this.stackName}/${suffix}`,
      description,
    });
    (secret.node.defaultChild as CfnSecret)
      .addPropertyDeletionOverride('GenerateSecretString');
    return secret;
  }

  private handler(step: Step, spec: StepSpec): NodejsFunction {
    const settings = this.settings;
    const id = step.charAt(0).toUpperCase() + step.slice(1);

    const logGroup = new LogGroup(this, `${id}Logs`, {
      retention: settings.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    // one role per function, with only what that step does
    const role = new Role(this, `${id}Role`, {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: `ghcr-backup ${step}: ${spec.description}`.slice(0, 1000),
    });
    logGroup.grantWrite(role);
    role.addToPolicy(new PolicyStatement({
      actions: spec.tableActions,
      resources: [this.table.tableArn],
    }));
    if (spec.target !== 'none') this.grantEcr(role, spec.target);

    // Only where to find the secrets goes into the environment, and only
    // of those the step reads: the functions read the values at cold
    // start, so no secret is ever in a function's configuration, the
    // workflow's state or a log.
    const environment: Record<string, string> = {
      TABLE_NAME: this.table.tableName,
      SOURCE_REGISTRY: settings.sourceRegistry,
      GITHUB_API: settings.githubApi,
      POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
      POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
      NODE_OPTIONS: '--enable-source-maps',
    };
    const secrets: Record<SecretName, [string, ISecret | undefined]> = {
      githubToken: ['GITHUB_TOKEN_SECRET_ARN', this.githubTokenSecret],
      targetCredentials: ['TARGET_CREDENTIALS_SECRET_ARN',
        this.targetCredentialsSecret],
    };
    for (const name of spec.secrets) {
      const [variable, secret] = secrets[name];
      if (!secret) continue;
      grantSecret(role, secret);
      environment[variable] = secret.secretArn;
    }

    return new NodejsFunction(this, id, {
      entry: join(ROOT, 'functions', spec.entry),
      handler: 'handler',
      projectRoot: ROOT,
      depsLockFilePath: join(ROOT, 'package-lock.json'),
      description: spec.description,
      runtime: Runtime.NODEJS_22_X,
      // Graviton: the same work for about 20% less per GB-second
      architecture: Architecture.ARM_64,
      memorySize: spec.memoryMiB,
      timeout: spec.timeout,
      role,
      environment,
      logGroup,
      loggingFormat: LoggingFormat.JSON,
      applicationLogLevelV2: ApplicationLogLevel.INFO,
      systemLogLevelV2: SystemLogLevel.WARN,
      bundling: BUNDLING,
    });
  }

  /** Lets a role pull from (or push to) an ECR target, through IAM. */
  private grantEcr(role: Role, access: 'read' | 'write'): void {
    const ecr = this.settings.ecr;
    if (!ecr) return;

    // ECR allows no narrower resource for this action
    role.addToPolicy(new PolicyStatement({
      actions: ['ecr:GetAuthorizationToken'],
      resources: ['*'],
    }));

    // only repositories under the target's path, in the target's account
    // and region (which may differ from the stack's)
    const repositories = this.formatArn({
      service: 'ecr', account: ecr.account, region: ecr.region,
      resource: 'repository',
      resourceName: ecr.path ? `${ecr.path}/*` : '*',
    });
    // HEAD and GET of manifests and blobs; a mount reads its source
    const read = ['ecr:BatchGetImage', 'ecr:BatchCheckLayerAvailability',
      'ecr:GetDownloadUrlForLayer'];
    const write = ['ecr:InitiateLayerUpload', 'ecr:UploadLayerPart',
      'ecr:CompleteLayerUpload', 'ecr:PutImage',
      'ecr:DescribeRepositories', 'ecr:CreateRepository'];
    role.addToPolicy(new PolicyStatement({
      effect: Effect.ALLOW,
      actions: access === 'write' ? [...read, ...write] : read,
      resources: [repositories],
    }));
  }

  private outputs(): void {
    const region = this.region;
    new CfnOutput(this, 'StateMachineArn', {
      value: this.stateMachine.stateMachineArn,
      description: 'The backup workflow; `npm start -- start` finds it here',
    });
    new CfnOutput(this, 'ConsoleUrl', {
      value: `https://${region}.console.aws.amazon.com/states/home?` +
        `region=${region}#/statemachines/view/` +
        this.stateMachine.stateMachineArn,
      description: 'The workflow in the Step Functions console ' +
        '(Start execution reruns a backup)',
    });
    new CfnOutput(this, 'ScheduledInput', {
      value: JSON.stringify(scheduledInput(this.settings)),
      description: 'The input scheduled runs start with; `npm start -- ' +
        'start` starts from it',
    });
    new CfnOutput(this, 'DashboardUrl', {
      value: `https://${region}.console.aws.amazon.com/cloudwatch/home?` +
        `region=${region}#dashboards/dashboard/` +
        this.monitoring.dashboard.dashboardName,
    });
    new CfnOutput(this, 'TableName', { value: this.table.tableName });
    new CfnOutput(this, 'GithubTokenSecretArn', {
      value: this.githubTokenSecret.secretArn,
      description: 'Put the GitHub token (read:packages) here',
    });
    if (this.targetCredentialsSecret) {
      new CfnOutput(this, 'TargetCredentialsSecretArn', {
        value: this.targetCredentialsSecret.secretArn,
        description: 'Put {"username": "...", "password": "..."} for ' +
          'the target registry here',
      });
    }
    new CfnOutput(this, 'AlarmTopicArn', {
      value: this.monitoring.topic.topicArn,
      description: 'Subscribe to receive the alarms',
    });
  }

  /**
   * Acknowledges the findings of the cdk-nag AwsSolutions pack that stay,
   * each with its reason. Wildcards are matched to the reasons below one
   * by one, so a new wildcard nobody explained still fails the pack.
   */
  private acknowledgeNagFindings(): void {
    Validations.of(this).acknowledge({
      id: 'AwsSolutions-L1',
      reason: 'Node.js 22 is the runtime the handlers are built and tested ' +
        'for (the project pins node@22); move with the project, not ahead.',
    });
    for (const secret of this.node.findAll()
      .filter((c): c is CfnSecret => c instanceof CfnSecret)) {
      Validations.of(secret).acknowledge({
        id: 'AwsSolutions-SMG4',
        reason: 'A GitHub token or a registry password cannot be rotated ' +
          'by a Secrets Manager rotation function: neither GitHub nor most ' +
          'registries offer an API that issues a replacement. Whoever ' +
          'made it replaces it with put-secret-value.',
      });
    }

    for (const policy of this.node.findAll()
      .filter((c): c is CfnPolicy => c instanceof CfnPolicy)) {
      const document = this.resolve(policy.policyDocument) as {
        Statement: { Effect: string; Action: string | string[];
          Resource: unknown }[] };
      const reasons = new Map<string, Set<string>>();
      for (const statement of document.Statement) {
        if (statement.Effect !== 'Allow') continue;
        const actions = [statement.Action].flat();
        for (const resource of [statement.Resource].flat()) {
          const flat = flattenReference(resource);
          if (!flat.includes('*')) continue;
          const known = WILDCARDS.find((w) => w.applies(actions, flat));
          if (!known) continue;
          const id = `AwsSolutions-IAM5[Resource::${flat}]`;
          reasons.set(id, (reasons.get(id) ?? new Set()).add(known.reason));
        }
      }
      for (const [id, why] of reasons) {
        Validations.of(policy).acknowledge({ id, reason: [...why].join(' ') });
      }
    }
  }
}

/** The wildcards this stack's policies may hold, and why each must stay. */
const WILDCARDS: { applies(actions: string[], resource: string): boolean;
  reason: string }[] = [{
  applies: (actions, resource) => resource === '*' &&
    actions.every((a) => a === 'ecr:GetAuthorizationToken'),
  reason: 'ecr:GetAuthorizationToken has no resource-level permission; ' +
    'what the token allows is still limited to the target repositories.',
}, {
  applies: (actions, resource) => /:ecr:[^:]+:\d{12}:repository\//
    .test(resource) && actions.every((a) => a.startsWith('ecr:')),
  reason: 'ECR repositories under the target path: the backup creates one ' +
    'per package as packages appear, so their names are unknown at deploy.',
}, {
  applies: (actions, resource) => resource.endsWith('-??????') &&
    actions.every((a) => a === 'secretsmanager:GetSecretValue'),
  reason: 'A secret imported by name: Secrets Manager ends its ARN with ' +
    'six random characters that only the wildcard matches.',
}, {
  applies: (actions, resource) => resource.endsWith(':*') &&
    actions.every((a) => a === 'lambda:InvokeFunction'),
  reason: 'Versions and aliases of the workflow\'s own functions, as the ' +
    'Step Functions Lambda task grants them.',
}, {
  applies: (actions, resource) => resource === '*' &&
    actions.every((a) => a.startsWith('xray:')),
  reason: 'X-Ray trace and sampling actions have no resource-level ' +
    'permission; the workflow is traced.',
}, {
  applies: (actions, resource) => resource === '*' &&
    actions.every((a) => a.startsWith('logs:')),
  reason: 'Step Functions delivers its execution logs through CloudWatch ' +
    'Logs delivery actions that have no resource-level permission.',
}, {
  applies: (actions, resource) => /:execution:/.test(resource) &&
    actions.every((a) => a.startsWith('states:')),
  reason: 'Child executions of the workflow\'s distributed Map, named by ' +
    'Step Functions at run time.',
}];

/** A resolved CloudFormation value as cdk-nag names it in finding ids. */
function flattenReference(value: unknown): string {
  if (typeof value === 'string') return value;
  const object = value as Record<string, unknown>;
  if (typeof object?.Ref === 'string') return `<${object.Ref}>`;
  const getAtt = object?.['Fn::GetAtt'];
  if (Array.isArray(getAtt)) return `<${getAtt.join('.')}>`;
  const join = object?.['Fn::Join'];
  if (Array.isArray(join)) {
    const [separator, parts] = join as [string, unknown[]];
    return parts.map(flattenReference).join(separator);
  }
  return JSON.stringify(value);
}

/**
 * Bundled by the local esbuild, never in Docker, as ES modules. The
 * banner gives CommonJS dependencies bundled into the ESM output the
 * `require` they expect. The AWS SDK is bundled so that the functions run
 * the SDK version the tests ran, not whatever the runtime ships.
 */
const BUNDLING: BundlingOptions = {
  forceDockerBundling: false,
  format: OutputFormat.ESM,
  target: 'node22',
  mainFields: ['module', 'main'],
  minify: true,
  sourceMap: true,
  bundleAwsSDK: true,
  banner: 'import { createRequire as __backupCreateRequire } from ' +
    '"node:module"; const require = __backupCreateRequire(import.meta.url);',
};

/** GetSecretValue only: the functions never describe or change secrets. */
function grantSecret(role: Role, secret: ISecret): void {
  role.addToPolicy(new PolicyStatement({
    actions: ['secretsmanager:GetSecretValue'],
    // a secret known by name has an ARN ending in six unknown characters
    resources: [secret.secretFullArn ?? `${secret.secretArn}-??????`],
  }));
}

function describeOwner(settings: BackupSettings): string {
  return 'org' in settings.owner ? `the GitHub org ${settings.owner.org}`
    : `the GitHub user ${settings.owner.user}`;
}
