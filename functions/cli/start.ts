// `npm start -- start`: starts a backup run of the deployed stack, the
// same as the console's "Start execution", and prints where to follow it.
//
// The input is the scheduled run's (from the stack's ScheduledInput
// output) with the flags laid over it field by field, checked here with
// the workflow's own rules before anything is started.

import { randomBytes } from 'node:crypto';
import { StartExecutionCommand } from '@aws-sdk/client-sfn';

import { InvalidInputError } from '../lib/errors.js';
import {
  MAX_IMAGE_CONCURRENCY, parseExecutionInput,
} from '../lib/run/input.js';
import type { ExecutionInput } from '../lib/run/types.js';
import {
  type AwsClients,
  DEFAULT_STACK_NAME,
  defaultClients,
  executionConsoleUrl,
  findWorkflow,
  fromAwsError,
  regionOfArn,
  STACK_FLAGS,
  stackTargetOf,
  type StackTarget,
} from './deployed.js';
import {
  ExitCode, UsageError, parseFlags, printJson, processTerminal,
  readCommandLine, reportError, wholeNumberFlag, type Terminal,
} from './output.js';

export const HELP = `Usage: npm start -- start [OPTIONS]

Starts a backup run of the deployed stack (a Step Functions execution) and
prints its console link. Without selection flags it runs what the schedule
runs; each flag replaces that field of the scheduled input.

Where:
  --stack NAME               the CloudFormation stack (default ${DEFAULT_STACK_NAME})
  --state-machine-arn ARN    start this state machine; skips the stack
                             (then --org or --user and --target are needed)
  --region REGION            the stack's region (default: AWS_REGION or
                             the AWS profile's)

What:
  --org NAME | --user NAME   whose packages
  --target [http://]HOST[:PORT][/PATH]
  --packages REGEX           only packages whose name matches
  --exclude-tags REGEX       never copy tags that match
  --all-versions             every tag, not only the highest of each line
  --dry-run                  check and measure; copy nothing
  --concurrency N            images copied at once (1-64)

  --json                     print the started execution as one JSON object
  -h, --help                 show this help

AWS credentials come from the usual chain (AWS_PROFILE, aws sso login,
environment); they need cloudformation:DescribeStacks and
states:StartExecution.
`;

export interface StartCommand extends StackTarget {
  /** Flags laid over the scheduled input. */
  overrides: Partial<ExecutionInput>;
  json: boolean;
}

export async function main(args: string[],
  terminal: Terminal = processTerminal,
  clients: AwsClients = defaultClients()): Promise<number> {
  const read = readCommandLine(terminal, 'start', HELP,
    () => readCommand(args));
  if ('exit' in read) return read.exit;
  const { command } = read;

  try {
    const started = await startRun(command, clients);
    if (command.json) {
      printJson(terminal, started);
    } else {
      terminal.stdout.write(describeStarted(started, command));
    }
    return ExitCode.ok;
  } catch (error) {
    return reportError(terminal, error, 'start');
  }
}

/** Parses the command line; throws UsageError naming what is wrong. */
export function readCommand(args: string[]): StartCommand | 'help' {
  const { values } = parseFlags({
    args,
    options: {
      ...STACK_FLAGS,
      org: { type: 'string' },
      user: { type: 'string' },
      target: { type: 'string' },
      packages: { type: 'string' },
      'exclude-tags': { type: 'string' },
      'all-versions': { type: 'boolean' },
      'dry-run': { type: 'boolean' },
      concurrency: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';

  if (values.org !== undefined && values.user !== undefined) {
    throw new UsageError('give --org or --user, not both');
  }
  const concurrency = values.concurrency === undefined ? undefined
    : wholeNumberFlag('--concurrency', values.concurrency, 1,
      MAX_IMAGE_CONCURRENCY);

  const overrides: Partial<ExecutionInput> = {
    ...(values.org !== undefined && { org: values.org }),
    ...(values.user !== undefined && { user: values.user }),
    ...(values.target !== undefined && { target: values.target }),
    ...(values.packages !== undefined && { packages: values.packages }),
    ...(values['exclude-tags'] !== undefined &&
      { excludeTags: values['exclude-tags'] }),
    ...(values['all-versions'] && { allVersions: true }),
    ...(values['dry-run'] && { dryRun: true }),
    ...(concurrency !== undefined && { concurrency }),
  };
  return {
    ...stackTargetOf(values),
    overrides,
    json: values.json,
  };
}

export interface StartedRun {
  executionArn: string;
  name: string;
  startDate: string;
  consoleUrl: string;
  input: ExecutionInput;
}

/** Finds the workflow, builds and checks the input, starts a run. */
export async function startRun(command: StartCommand,
  clients: AwsClients): Promise<StartedRun> {
  const workflow = await findWorkflow(command, clients);
  const input = executionInput(workflow.scheduledInput, command.overrides);

  // the workflow would refuse it in its first step; say so now
  parseExecutionInput(input);

  const name = executionName(new Date());
  const region = regionOfArn(workflow.stateMachineArn);
  let answer;
  try {
    answer = await clients.sfn(region).send(new StartExecutionCommand({
      stateMachineArn: workflow.stateMachineArn,
      name,
      input: JSON.stringify(input),
    }));
  } catch (error) {
    throw fromAwsError(error, `starting ${workflow.stateMachineArn}`,
      'states:StartExecution on the state machine');
  }

  const executionArn = answer.executionArn!;
  return {
    executionArn,
    name,
    startDate: (answer.startDate ?? new Date()).toISOString(),
    consoleUrl: executionConsoleUrl(executionArn),
    input,
  };
}

/** The scheduled input with the flags laid over it. */
export function executionInput(scheduled: ExecutionInput | undefined,
  overrides: Partial<ExecutionInput>): ExecutionInput {
  const input: Partial<ExecutionInput> = { ...scheduled };

  // an owner given on the command line replaces the scheduled one
  if (overrides.org !== undefined || overrides.user !== undefined) {
    delete input.org;
    delete input.user;
  }
  Object.assign(input, overrides);

  if ((input.org === undefined && input.user === undefined) ||
      input.target === undefined) {
    throw new InvalidInputError('no scheduled input to start from, and ' +
      'no --org/--user and --target given', {
      hint: 'pass --org NAME (or --user NAME) and --target HOST[/PATH], ' +
        'or --stack NAME of a deployed backup',
    });
  }
  return input as ExecutionInput;
}

/** `cli-20250102T030405Z-1a2b3c`: sorts by time, says who started it. */
export function executionName(now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
  return `cli-${stamp}-${randomBytes(3).toString('hex')}`;
}

function describeStarted(run: StartedRun, command: StartCommand): string {
  const owner = run.input.org !== undefined
    ? `org ${run.input.org}` : `user ${run.input.user}`;
  const stack = command.stateMachineArn
    ? `--state-machine-arn ${command.stateMachineArn}`
    : `--stack ${command.stackName}`;
  return [
    `Started ${run.input.dryRun ? 'a dry run' : 'a backup'} of the ` +
      `GitHub ${owner} into ${run.input.target}: ${run.name}`,
    `  follow it: ${run.consoleUrl}`,
    `  later:     npm start -- status ${stack}`,
    '',
  ].join('\n');
}
