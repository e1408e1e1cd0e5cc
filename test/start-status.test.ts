import { Writable } from 'node:stream';

import {
  CloudFormationClient,
  DescribeStacksCommand,
} from '@aws-sdk/client-cloudformation';
import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  ListExecutionsCommand,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';

import type { AwsClients } from '../functions/cli/deployed.js';
import type { Terminal } from '../functions/cli/output.js';
import { main as start } from '../functions/cli/start.js';
import { main as status } from '../functions/cli/status.js';
import type { RunSummary } from '../functions/lib/run/types.js';

const REGION = 'eu-west-1';
const STATE_MACHINE =
  `arn:aws:states:${REGION}:123456789012:stateMachine:Backup`;
const EXECUTION = (name: string) =>
  `arn:aws:states:${REGION}:123456789012:execution:Backup:${name}`;
const SCHEDULED = { org: 'acme', target: 'registry.example.com/backup' };

const sfn = mockClient(SFNClient);
const cloudFormation = mockClient(CloudFormationClient);

const clients: AwsClients = {
  sfn: (region) => new SFNClient({ region: region ?? REGION }),
  cloudFormation: (region) =>
    new CloudFormationClient({ region: region ?? REGION }),
};

/** A terminal that keeps what was written, as text. */
function captureTerminal() {
  const out: string[] = [];
  const err: string[] = [];
  const sink = (into: string[]) => new Writable({
    write(chunk, _encoding, done) {
      into.push(String(chunk));
      done();
    },
  });
  const terminal: Terminal = { stdout: sink(out), stderr: sink(err) };
  return { terminal, stdout: () => out.join(''), stderr: () => err.join('') };
}

function stackOutputs(outputs: Record<string, string>) {
  cloudFormation.on(DescribeStacksCommand).resolves({
    Stacks: [{
      StackName: 'GhcrBackup', StackStatus: 'CREATE_COMPLETE',
      CreationTime: new Date(),
      Outputs: Object.entries(outputs).map(([OutputKey, OutputValue]) =>
        ({ OutputKey, OutputValue })),
    }],
  });
}

function startedInput(): Record<string, unknown> {
  const call = sfn.commandCalls(StartExecutionCommand)[0]!;
  return JSON.parse(call.args[0].input.input!);
}

function summary(overrides: Partial<RunSummary> = {}): RunSummary {
  return {
    runId: '20300101T030000Z-abcdef', dryRun: false, succeeded: true,
    images: { total: 40, copied: 3, upToDate: 37, failed: 0 },
    goneFromSource: { count: 1, tags: ['old:1.0'] },
    blobs: { uploaded: 5, mounted: 2, skipped: 30, foreign: 0 },
    bytesUploaded: 3 * 1024 * 1024,
    durationMs: 65_000,
    failures: [],
    ...overrides,
  };
}

beforeEach(() => {
  sfn.reset();
  cloudFormation.reset();
});

describe('start', () => {
  beforeEach(() => {
    sfn.on(StartExecutionCommand).callsFake((input) => ({
      executionArn: EXECUTION(input.name),
      startDate: new Date('2030-01-01T10:00:00Z'),
    }));
  });

  it('starts the scheduled input of the stack and prints the console link',
    async () => {
      stackOutputs({ StateMachineArn: STATE_MACHINE,
        ScheduledInput: JSON.stringify(SCHEDULED) });
      const io = captureTerminal();

      const exit = await start(['--stack', 'GhcrBackup'], io.terminal,
        clients);

      expect(exit).toBe(0);
      expect(cloudFormation.commandCalls(DescribeStacksCommand)[0]!.args[0]
        .input).toEqual({ StackName: 'GhcrBackup' });
      const call = sfn.commandCalls(StartExecutionCommand)[0]!.args[0].input;
      expect(call.stateMachineArn).toBe(STATE_MACHINE);
      expect(call.name).toMatch(/^cli-\d{8}T\d{6}Z-[0-9a-f]{6}$/);
      expect(startedInput()).toEqual(SCHEDULED);
      expect(io.stdout()).toContain(
        `https://${REGION}.console.aws.amazon.com/states/home?` +
        `region=${REGION}#/v2/executions/details/${EXECUTION(call.name!)}`);
    });

  it('lays the flags over the scheduled input, field by field', async () => {
    stackOutputs({ StateMachineArn: STATE_MACHINE,
      ScheduledInput: JSON.stringify({ ...SCHEDULED, packages: '^app' }) });
    const io = captureTerminal();

    const exit = await start(['--user', 'octocat', '--exclude-tags=-rc$',
      '--all-versions', '--dry-run', '--concurrency', '8'], io.terminal,
      clients);

    expect(exit).toBe(0);
    expect(startedInput()).toEqual({
      user: 'octocat', target: SCHEDULED.target, packages: '^app',
      excludeTags: '-rc$', allVersions: true, dryRun: true, concurrency: 8,
    });
    expect(io.stdout()).toContain('Started a dry run of the GitHub user ' +
      'octocat');
  });

  it('starts a state machine given by ARN without reading any stack',
    async () => {
      const io = captureTerminal();

      const exit = await start(['--state-machine-arn', STATE_MACHINE,
        '--org', 'acme', '--target', 'http://127.0.0.1:5000', '--json'],
      io.terminal, clients);

      expect(exit).toBe(0);
      expect(cloudFormation.commandCalls(DescribeStacksCommand))
        .toHaveLength(0);
      const printed = JSON.parse(io.stdout());
      expect(printed).toMatchObject({
        executionArn: expect.stringContaining(':execution:Backup:cli-'),
        input: { org: 'acme', target: 'http://127.0.0.1:5000' },
        consoleUrl: expect.stringContaining('/v2/executions/details/'),
      });
    });

  it('asks for an owner and a target when there is no scheduled input',
    async () => {
      const io = captureTerminal();

      const exit = await start(['--state-machine-arn', STATE_MACHINE,
        '--org', 'acme'], io.terminal, clients);

      expect(exit).toBe(1);
      expect(io.stderr()).toContain('pass --org NAME (or --user NAME) and ' +
        '--target');
      expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
    });

  it('refuses, before starting, an input the workflow would refuse',
    async () => {
      stackOutputs({ StateMachineArn: STATE_MACHINE,
        ScheduledInput: JSON.stringify(SCHEDULED) });
      const io = captureTerminal();

      const exit = await start(['--packages', '(unclosed'], io.terminal,
        clients);

      expect(exit).toBe(1);
      expect(io.stderr()).toContain('"packages" is not a regular expression');
      expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
    });

  it('says how to deploy when the stack does not exist', async () => {
    cloudFormation.on(DescribeStacksCommand).rejects(Object.assign(
      new Error('Stack with id Nope does not exist'),
      { name: 'ValidationError' }));
    const io = captureTerminal();

    const exit = await start(['--stack', 'Nope'], io.terminal, clients);

    expect(exit).toBe(1);
    expect(io.stderr()).toContain('stack Nope does not exist');
    expect(io.stderr()).toContain('npx cdk deploy');
  });

  it('names the permission the credentials lack', async () => {
    stackOutputs({ StateMachineArn: STATE_MACHINE,
      ScheduledInput: JSON.stringify(SCHEDULED) });
    sfn.on(StartExecutionCommand).rejects(Object.assign(
      new Error('User is not authorized'),
      { name: 'AccessDeniedException', $metadata: { httpStatusCode: 400 } }));
    const io = captureTerminal();

    const exit = await start([], io.terminal, clients);

    expect(exit).toBe(1);
    expect(io.stderr()).toContain('states:StartExecution');
  });

  it('refuses --org together with --user as a usage error', async () => {
    const io = captureTerminal();

    const exit = await start(['--org', 'a', '--user', 'b'], io.terminal,
      clients);

    expect(exit).toBe(2);
    expect(io.stderr()).toContain('give --org or --user, not both');
  });
});

describe('status', () => {
  beforeEach(() => {
    stackOutputs({ StateMachineArn: STATE_MACHINE });
  });

  it('lists the latest runs with their summaries, newest first',
    async () => {
      const failed = summary({
        succeeded: false,
        images: { total: 40, copied: 2, upToDate: 37, failed: 1 },
        failures: [{ package: 'app', digest: 'sha256:' + 'a'.repeat(64),
          tags: ['1.0'], error: { name: 'NotFoundError',
            message: 'manifest unknown' } }],
        error: { name: 'ImagesFailed', message: '1 of 40 images failed' },
      });
      sfn.on(ListExecutionsCommand).resolves({ executions: [
        { executionArn: EXECUTION('new'), stateMachineArn: STATE_MACHINE,
          name: 'new', status: 'SUCCEEDED', startDate: new Date() },
        { executionArn: EXECUTION('old'), stateMachineArn: STATE_MACHINE,
          name: 'old', status: 'FAILED', startDate: new Date() },
      ] });
      sfn.on(DescribeExecutionCommand, { executionArn: EXECUTION('new') })
        .resolves({
          executionArn: EXECUTION('new'), stateMachineArn: STATE_MACHINE,
          name: 'new', status: 'SUCCEEDED',
          startDate: new Date('2030-01-02T03:00:00Z'),
          stopDate: new Date('2030-01-02T03:01:05Z'),
          input: JSON.stringify(SCHEDULED),
          output: JSON.stringify(summary()),
        });
      sfn.on(DescribeExecutionCommand, { executionArn: EXECUTION('old') })
        .resolves({
          executionArn: EXECUTION('old'), stateMachineArn: STATE_MACHINE,
          name: 'old', status: 'FAILED',
          startDate: new Date('2030-01-01T03:00:00Z'),
          stopDate: new Date('2030-01-01T03:02:00Z'),
          input: JSON.stringify(SCHEDULED),
          error: 'ImagesFailed', cause: '1 of 40 images failed',
        });
      sfn.on(GetExecutionHistoryCommand).resolves({ events: [
        { id: 9, type: 'ExecutionFailed', timestamp: new Date() },
        { id: 7, type: 'TaskStateExited', timestamp: new Date(),
          stateExitedEventDetails: { name: 'Summarize',
            output: JSON.stringify(failed) } },
      ] });
      const io = captureTerminal();

      const exit = await status(['--limit', '2'], io.terminal, clients);

      expect(exit).toBe(0);
      expect(sfn.commandCalls(ListExecutionsCommand)[0]!.args[0].input)
        .toEqual({ stateMachineArn: STATE_MACHINE, maxResults: 2 });
      const text = io.stdout();
      expect(text.indexOf('2030-01-02 03:00:00 UTC  SUCCEEDED  1 min 05 s'))
        .toBeGreaterThanOrEqual(0);
      expect(text.indexOf('2030-01-02')).toBeLessThan(
        text.indexOf('2030-01-01'));
      expect(text).toContain('images: 40 (copied 3, up to date 37, ' +
        'failed 0), gone from source 1');
      expect(text).toContain('blobs: uploaded 5, mounted 2, skipped 30; ' +
        '3.0 MiB uploaded');
      expect(text).toContain('failed: app:1.0: NotFoundError: ' +
        'manifest unknown');
      expect(sfn.commandCalls(GetExecutionHistoryCommand)).toHaveLength(1);
    });

  it('prints the runs as JSON with --json', async () => {
    sfn.on(ListExecutionsCommand).resolves({ executions: [
      { executionArn: EXECUTION('run'), stateMachineArn: STATE_MACHINE,
        name: 'run', status: 'RUNNING', startDate: new Date() }] });
    sfn.on(DescribeExecutionCommand).resolves({
      executionArn: EXECUTION('run'), stateMachineArn: STATE_MACHINE,
      name: 'run', status: 'RUNNING',
      startDate: new Date('2030-01-02T03:00:00Z'),
      input: JSON.stringify(SCHEDULED),
    });
    const io = captureTerminal();

    await status(['--json'], io.terminal, clients);

    expect(JSON.parse(io.stdout())).toEqual({ runs: [{
      name: 'run', executionArn: EXECUTION('run'), status: 'RUNNING',
      startDate: '2030-01-02T03:00:00.000Z', input: SCHEDULED,
      consoleUrl: expect.stringContaining(EXECUTION('run')),
    }] });
  });

  it('says how to start a run when there is none', async () => {
    sfn.on(ListExecutionsCommand).resolves({ executions: [] });
    const io = captureTerminal();

    await status([], io.terminal, clients);

    expect(io.stdout()).toContain('No runs yet');
  });

  it('refuses a --limit outside 1 to 100', async () => {
    const io = captureTerminal();

    expect(await status(['--limit', '0'], io.terminal, clients)).toBe(2);
    expect(io.stderr()).toContain('--limit must be a whole number');
  });
});
