// `npm start -- status`: the latest backup runs of the deployed stack and
// their summaries.
//
// A run that succeeded ends with the summary as its output. A run that
// failed has no output (its Fail state keeps only the error), so its
// summary is read from the Summarize state's exit in the history's last
// events.

import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  ListExecutionsCommand,
  type SFNClient,
} from '@aws-sdk/client-sfn';

import type { ExecutionInput, RunSummary } from '../lib/run/types.js';
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
  ExitCode, formatBytes, formatDuration, parseFlags, plural, printJson,
  processTerminal, readCommandLine, reportError, wholeNumberFlag,
  type Terminal,
} from './output.js';

export const HELP = `Usage: npm start -- status [OPTIONS]

Lists the latest backup runs of the deployed stack, newest first, with
what each copied, skipped and failed.

  --stack NAME               the CloudFormation stack (default ${DEFAULT_STACK_NAME})
  --state-machine-arn ARN    read this state machine; skips the stack
  --region REGION            the stack's region (default: AWS_REGION or
                             the AWS profile's)
  --limit N                  how many runs (default 10, at most 100)
  --json                     print the runs as one JSON object
  -h, --help                 show this help

AWS credentials need cloudformation:DescribeStacks, states:ListExecutions,
states:DescribeExecution and states:GetExecutionHistory.
`;

/** The state whose output is the run's summary (infra/workflow.ts). */
const SUMMARIZE_STATE = 'Summarize';

/** Where in a failed run's history the summary is: among the last events. */
const HISTORY_TAIL = 25;

export interface StatusCommand extends StackTarget {
  limit: number;
  json: boolean;
}

export async function main(args: string[],
  terminal: Terminal = processTerminal,
  clients: AwsClients = defaultClients()): Promise<number> {
  const read = readCommandLine(terminal, 'status', HELP,
    () => readCommand(args));
  if ('exit' in read) return read.exit;
  const { command } = read;

  try {
    const runs = await latestRuns(command, clients);
    if (command.json) {
      printJson(terminal, { runs });
    } else {
      terminal.stdout.write(describeRuns(runs));
    }
    return ExitCode.ok;
  } catch (error) {
    return reportError(terminal, error, 'status');
  }
}

export function readCommand(args: string[]): StatusCommand | 'help' {
  const { values } = parseFlags({
    args,
    options: {
      ...STACK_FLAGS,
      limit: { type: 'string', default: '10' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';

  const limit = wholeNumberFlag('--limit', values.limit, 1, 100);
  return {
    ...stackTargetOf(values),
    limit,
    json: values.json,
  };
}

/** One run as `status` shows it. */
export interface RunStatus {
  name: string;
  executionArn: string;
  status: string;
  startDate?: string;
  stopDate?: string;
  input?: ExecutionInput;
  summary?: RunSummary;
  /** Why the execution failed, when it did. */
  error?: { name: string; cause?: string };
  consoleUrl: string;
}

export async function latestRuns(command: StatusCommand,
  clients: AwsClients): Promise<RunStatus[]> {
  const { stateMachineArn } = await findWorkflow(command, clients);
  const sfn = clients.sfn(regionOfArn(stateMachineArn));

  let listed;
  try {
    listed = await sfn.send(new ListExecutionsCommand({
      stateMachineArn, maxResults: command.limit,
    }));
  } catch (error) {
    throw fromAwsError(error, `listing the runs of ${stateMachineArn}`,
      'states:ListExecutions on the state machine');
  }

  const runs: RunStatus[] = [];
  for (const item of listed.executions ?? []) {
    runs.push(await describeRun(sfn, item.executionArn!));
  }
  return runs;
}

async function describeRun(sfn: SFNClient, executionArn: string):
  Promise<RunStatus> {
  let execution;
  try {
    execution = await sfn.send(new DescribeExecutionCommand({
      executionArn,
    }));
  } catch (error) {
    throw fromAwsError(error, `reading run ${executionArn}`,
      'states:DescribeExecution on the executions');
  }

  const run: RunStatus = {
    name: execution.name ?? executionArn.split(':').pop()!,
    executionArn,
    status: execution.status ?? 'UNKNOWN',
    startDate: execution.startDate?.toISOString(),
    stopDate: execution.stopDate?.toISOString(),
    input: parseJson(execution.input) as ExecutionInput | undefined,
    consoleUrl: executionConsoleUrl(executionArn),
  };
  if (execution.error !== undefined || execution.cause !== undefined) {
    run.error = { name: execution.error ?? 'Error',
      cause: execution.cause };
  }

  run.summary = asSummary(parseJson(execution.output));
  if (!run.summary && run.status === 'FAILED') {
    run.summary = await summaryFromHistory(sfn, executionArn);
  }
  return run;
}

/** The Summarize state's output among a finished run's last events. */
async function summaryFromHistory(sfn: SFNClient, executionArn: string):
  Promise<RunSummary | undefined> {
  let history;
  try {
    history = await sfn.send(new GetExecutionHistoryCommand({
      executionArn, reverseOrder: true, maxResults: HISTORY_TAIL,
      includeExecutionData: true,
    }));
  } catch (error) {
    throw fromAwsError(error, `reading the history of ${executionArn}`,
      'states:GetExecutionHistory on the executions');
  }

  const exited = history.events?.find((event) =>
    event.stateExitedEventDetails?.name === SUMMARIZE_STATE);
  return asSummary(parseJson(exited?.stateExitedEventDetails?.output));
}

function asSummary(value: unknown): RunSummary | undefined {
  const summary = value as Partial<RunSummary> | undefined;
  return summary && typeof summary === 'object' && summary.images &&
    summary.blobs ? summary as RunSummary : undefined;
}

function parseJson(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A block per run: when, how it ended, what it did. */
export function describeRuns(runs: readonly RunStatus[]): string {
  if (runs.length === 0) {
    return 'No runs yet. Start one with `npm start -- start`.\n';
  }

  const lines: string[] = [];
  for (const run of runs) {
    const when = run.startDate
      ? run.startDate.replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : '?';
    const took = run.startDate && run.stopDate
      ? `  ${formatDuration(Date.parse(run.stopDate) -
        Date.parse(run.startDate))}` : '';
    const what = run.input
      ? `  ${run.input.org ?? run.input.user} -> ${run.input.target}` +
        (run.input.dryRun ? ' (dry run)' : '')
      : '';
    lines.push(`${when}  ${run.status}${took}${what}`);

    const summary = run.summary;
    if (summary) {
      const { images, blobs } = summary;
      lines.push(`  images: ${images.total} (copied ${images.copied}, ` +
        `up to date ${images.upToDate}, failed ${images.failed}), ` +
        `gone from source ${summary.goneFromSource.count}`);
      lines.push(`  blobs: uploaded ${blobs.uploaded}, mounted ` +
        `${blobs.mounted}, skipped ${blobs.skipped}; ` +
        `${formatBytes(summary.bytesUploaded)} uploaded`);
      for (const failure of summary.failures) {
        const tags = failure.tags.length > 0 ? `:${failure.tags.join(',')}`
          : `@${failure.digest}`;
        lines.push(`  failed: ${failure.package}${tags}: ` +
          `${failure.error.name}: ${failure.error.message.split('\n')[0]}`);
      }
      const unlisted = images.failed - summary.failures.length;
      if (unlisted > 0) {
        lines.push(`  and ${plural(unlisted, 'more failed image')}`);
      }
    }
    if (run.error && !summary) {
      const cause = (run.error.cause ?? '').split('\n')[0]!.slice(0, 300);
      lines.push(`  ${run.error.name}: ${cause}`.trimEnd());
    }
    lines.push(`  ${run.consoleUrl}`);
  }
  return `${lines.join('\n')}\n`;
}
