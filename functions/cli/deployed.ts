// The deployed backup as `start` and `status` see it: the stack's outputs
// (the state machine, the scheduled input), console links, and AWS SDK
// errors turned into the project's errors with what to do about them.

import {
  CloudFormationClient,
  DescribeStacksCommand,
} from '@aws-sdk/client-cloudformation';
import { SFNClient } from '@aws-sdk/client-sfn';

import {
  AuthenticationError,
  InvalidInputError,
  NotFoundError,
  TransientError,
} from '../lib/errors.js';
import type { ExecutionInput } from '../lib/run/types.js';

export const DEFAULT_STACK_NAME = 'GhcrBackup';

/** The AWS clients the commands use; tests pass mocked ones. */
export interface AwsClients {
  sfn(region?: string): SFNClient;
  cloudFormation(region?: string): CloudFormationClient;
}

/** Clients with the SDK's default credentials and region chain. */
export function defaultClients(): AwsClients {
  return {
    sfn: (region) => new SFNClient(region ? { region } : {}),
    cloudFormation: (region) =>
      new CloudFormationClient(region ? { region } : {}),
  };
}

/** Where the commands find the workflow. */
export interface StackTarget {
  stackName: string;
  stateMachineArn?: string;
  region?: string;
}

/** The flags that name the deployed stack, shared by start and status. */
export const STACK_FLAGS = {
  stack: { type: 'string', default: DEFAULT_STACK_NAME },
  'state-machine-arn': { type: 'string' },
  region: { type: 'string' },
} as const;

/** The StackTarget those flags give. */
export function stackTargetOf(values: { stack: string;
  'state-machine-arn'?: string; region?: string }): StackTarget {
  return { stackName: values.stack,
    stateMachineArn: values['state-machine-arn'], region: values.region };
}

export interface DeployedWorkflow {
  stateMachineArn: string;
  /** The input the schedule starts runs with, when the stack says. */
  scheduledInput?: ExecutionInput;
}

/**
 * The state machine: as given, else from the stack's `StateMachineArn`
 * output, with the scheduled run's input from `ScheduledInput`.
 */
export async function findWorkflow(target: StackTarget,
  clients: AwsClients): Promise<DeployedWorkflow> {
  if (target.stateMachineArn) {
    return { stateMachineArn: target.stateMachineArn };
  }

  let outputs: { OutputKey?: string; OutputValue?: string }[];
  try {
    const answer = await clients.cloudFormation(target.region).send(
      new DescribeStacksCommand({ StackName: target.stackName }));
    outputs = answer.Stacks?.[0]?.Outputs ?? [];
  } catch (error) {
    if (errorName(error) === 'ValidationError' &&
        /does not exist/.test(errorMessage(error))) {
      throw new NotFoundError(
        `stack ${target.stackName} does not exist in this account and ` +
        'region', {
          hint: 'deploy it with `npx cdk deploy`, pass --stack NAME, ' +
            '--region REGION, or --state-machine-arn ARN', cause: error,
        });
    }
    throw fromAwsError(error, `reading stack ${target.stackName}`,
      'cloudformation:DescribeStacks');
  }

  const output = (key: string) =>
    outputs.find((o) => o.OutputKey === key)?.OutputValue;
  const stateMachineArn = output('StateMachineArn');
  if (!stateMachineArn) {
    throw new NotFoundError(`stack ${target.stackName} has no ` +
      'StateMachineArn output: it is not a ghcr-backup stack', {
      hint: 'pass --stack NAME of the deployed backup, or ' +
        '--state-machine-arn ARN',
    });
  }

  const scheduled = output('ScheduledInput');
  let scheduledInput: ExecutionInput | undefined;
  if (scheduled) {
    try {
      scheduledInput = JSON.parse(scheduled) as ExecutionInput;
    } catch {
      scheduledInput = undefined;
    }
  }
  return { stateMachineArn, scheduledInput };
}

/** The region an ARN names (`arn:PARTITION:SERVICE:REGION:...`). */
export function regionOfArn(arn: string): string {
  const region = arn.split(':')[3];
  if (!region) {
    throw new InvalidInputError(`${arn} is not an ARN with a region`, {
      hint: 'copy the ARN from the stack\'s StateMachineArn output',
    });
  }
  return region;
}

/** The Step Functions console page of an execution. */
export function executionConsoleUrl(executionArn: string): string {
  const [, partition, , region] = executionArn.split(':');
  const host = partition === 'aws-cn' ? `${region}.console.amazonaws.cn`
    : partition === 'aws-us-gov'
      ? `${region}.console.amazonaws-us-gov.com`
      : `${region}.console.aws.amazon.com`;
  return `https://${host}/states/home?region=${region}` +
    `#/v2/executions/details/${executionArn}`;
}

const DENIED = new Set(['AccessDeniedException', 'AccessDenied',
  'UnrecognizedClientException', 'InvalidClientTokenId',
  'ExpiredTokenException', 'ExpiredToken', 'InvalidSignatureException',
  'SignatureDoesNotMatch']);

/**
 * Sorts an AWS SDK error into the project's families, saying which
 * `action` the credentials need when access was denied.
 */
export function fromAwsError(error: unknown, what: string,
  action: string): Error {
  const name = errorName(error) ?? 'Error';
  const message = `${what} failed: ${name}: ${errorMessage(error)}`;
  const meta = error as { $metadata?: { httpStatusCode?: number };
    $fault?: string } | undefined;
  const status = meta?.$metadata?.httpStatusCode;

  if (name === 'CredentialsProviderError' ||
      /Could not load credentials/i.test(errorMessage(error))) {
    return new AuthenticationError(`${what} failed: no AWS credentials`, {
      hint: 'configure them (`aws configure`, `aws sso login`, or ' +
        'AWS_PROFILE / AWS_ACCESS_KEY_ID)', cause: error,
    });
  }
  if (/Region is missing/i.test(errorMessage(error))) {
    return new InvalidInputError(`${what} failed: no AWS region`, {
      hint: 'pass --region REGION or set AWS_REGION', cause: error,
    });
  }
  if (DENIED.has(name) || status === 401 || status === 403) {
    return new AuthenticationError(message, {
      hint: `your AWS credentials need ${action}`, status, cause: error,
    });
  }
  if (/DoesNotExist|NotFound/.test(name)) {
    return new NotFoundError(message, {
      hint: 'check --stack, --region or --state-machine-arn', status,
      cause: error,
    });
  }
  if (meta?.$fault === 'server' || status === 429 ||
      /Throttl|TooManyRequests|Timeout|ECONN|ENOTFOUND|EAI_AGAIN/i
        .test(`${name} ${errorMessage(error)}`)) {
    return new TransientError(message, { status, cause: error });
  }
  return new InvalidInputError(message, { status, cause: error });
}

function errorName(error: unknown): string | undefined {
  return error instanceof Error ? error.name : undefined;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
