// The workflow definition as CDK builds it: states, fan-out, retries and
// catches by error name, the continuation loop, the failing end; and the
// definition synthesized on its own for the local run.

import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { StateMachine } from 'aws-local-stepfunctions';
import { describe, expect, it } from 'vitest';

import { workflowDefinition } from '../functions/local/definition.js';
import { makeTempDir, removeDir } from './harness/index.js';

import {
  BackupWorkflow, COPY_ERROR_NAMES, StateName, synthesizeWorkflowDefinition,
  type BackupWorkflowProps,
} from '../infra/workflow.js';

type Asl = { StartAt: string; States: Record<string, Record<string, any>> };

function functionIn(stack: Stack, id: string, timeout: Duration):
  lambda.Function {
  return new lambda.Function(stack, id, {
    runtime: lambda.Runtime.NODEJS_22_X,
    handler: 'index.handler',
    code: lambda.Code.fromInline('export const handler = async () => ({});'),
    timeout,
  });
}

/** A fresh app and stack with the workflow; its definition as JSON. */
function build(props: Partial<BackupWorkflowProps> = {}):
  { template: Template; definition: Asl } {
  const stack = new Stack(new App(), 'Test');
  new BackupWorkflow(stack, 'Workflow', {
    listAndSelect: functionIn(stack, 'List', Duration.minutes(10)),
    checkPage: functionIn(stack, 'Check', Duration.minutes(5)),
    copyImage: functionIn(stack, 'Copy', Duration.minutes(15)),
    summarize: functionIn(stack, 'Summarize', Duration.minutes(3)),
    ...props,
  });

  const template = Template.fromStack(stack);
  const machine = Object.values(
    template.findResources('AWS::StepFunctions::StateMachine'))[0]!;
  const parts = machine.Properties.DefinitionString['Fn::Join'][1] as
    unknown[];
  const text = parts.map((part) => typeof part === 'string' ? part
    : 'arn:aws:lambda:us-east-1:123456789012:function:x').join('');
  return { template, definition: JSON.parse(text) as Asl };
}

function inner(definition: Asl) {
  const pages = definition.States[StateName.backupPages]!;
  const images = pages.ItemProcessor.States[StateName.copyImages];
  return { pages, images, image: images.ItemProcessor.States };
}

describe('BackupWorkflow', () => {
  it('lists, fans out over pages and images, then summarizes', () => {
    // Act
    const { definition } = build();

    // Assess
    expect(definition.StartAt).toBe(StateName.listAndSelect);
    expect(definition.States[StateName.listAndSelect]!.Next)
      .toBe(StateName.backupPages);
    expect(definition.States[StateName.backupPages]!.Next)
      .toBe(StateName.summarize);
    expect(definition.States[StateName.summarize]!.Next)
      .toBe(StateName.checkOutcome);
    const { pages, images } = inner(definition);
    expect(pages.ItemsPath).toBe('$.pages');
    expect(pages.ItemProcessor.StartAt).toBe(StateName.checkPage);
    expect(images.ItemsPath).toBe('$.check.work');
    expect(images.ItemProcessor.StartAt).toBe(StateName.copyImage);
  });

  it('runs each page as a child execution of a DISTRIBUTED Map', () => {
    // Act
    const { definition } = build();

    // Assess
    const { pages, images } = inner(definition);
    expect(pages.ItemProcessor.ProcessorConfig).toEqual({
      Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' });
    expect(images.ItemProcessor.ProcessorConfig).toEqual({ Mode: 'INLINE' });
    expect(pages.MaxConcurrencyPath).toBe('$.concurrency.pages');
    expect(images.MaxConcurrencyPath).toBe('$.imageConcurrency');
  });

  it('runs the pages inline when distributed is off', () => {
    // Act
    const { definition } = build({ distributed: false });

    // Assess
    expect(inner(definition).pages.ItemProcessor.ProcessorConfig)
      .toEqual({ Mode: 'INLINE' });
  });

  it('retries TransientError with backoff and records every copy failure',
    () => {
      // Act
      const { definition } = build();

      // Assess
      const copy = inner(definition).image[StateName.copyImage];
      expect(copy.Retry).toContainEqual(expect.objectContaining({
        ErrorEquals: ['TransientError'], BackoffRate: 2,
        JitterStrategy: 'FULL' }));
      expect(copy.Catch).toEqual([
        { ErrorEquals: [...COPY_ERROR_NAMES], ResultPath: '$.error',
          Next: StateName.recordCopyFailure },
        { ErrorEquals: ['States.ALL'], ResultPath: '$.error',
          Next: StateName.recordCopyFailure },
      ]);
      const record = inner(definition).image[StateName.recordCopyFailure];
      expect(record.Parameters).toMatchObject({ action: 'record-failure',
        'error.$': '$.error' });
      expect(record.Next).toBe(StateName.imageDone);
    });

  it('loops back to CopyImage while a copy is incomplete', () => {
    // Act
    const { definition } = build();

    // Assess
    const { image } = inner(definition);
    expect(image[StateName.copyImage].Next).toBe(StateName.copyFinished);
    expect(image[StateName.copyImage].Parameters['previous.$'])
      .toBe('$.copy');
    expect(image[StateName.copyFinished]).toMatchObject({
      Type: 'Choice',
      Choices: [{ Variable: '$.copy.status', StringEquals: 'incomplete',
        Next: StateName.copyImage }],
      Default: StateName.imageDone,
    });
  });

  it('summarizes even when the fan-out fails, then fails the execution',
    () => {
      // Act
      const { definition } = build();

      // Assess
      expect(definition.States[StateName.backupPages]!.Catch).toEqual([
        { ErrorEquals: ['States.ALL'], ResultPath: '$.failure',
          Next: StateName.summarize }]);
      expect(definition.States[StateName.checkOutcome]).toMatchObject({
        Choices: [{ Variable: '$.succeeded', BooleanEquals: true,
          Next: StateName.done }],
        Default: StateName.backupFailed });
      expect(definition.States[StateName.backupFailed]).toMatchObject({
        Type: 'Fail', ErrorPath: '$.error.name',
        CausePath: '$.error.message' });
    });

  it('gives each Task the timeout of its function', () => {
    // Act
    const { definition } = build();

    // Assess
    const { pages, image } = inner(definition);
    expect(definition.States[StateName.listAndSelect]!.TimeoutSeconds)
      .toBe(600);
    expect(pages.ItemProcessor.States[StateName.checkPage].TimeoutSeconds)
      .toBe(300);
    expect(image[StateName.copyImage].TimeoutSeconds).toBe(900);
    expect(definition.States[StateName.summarize]!.TimeoutSeconds)
      .toBe(180);
  });

  it('creates a Standard state machine that may invoke the functions',
    () => {
      // Act
      const { template } = build({ tracingEnabled: true });

      // Assess
      template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
        StateMachineType: 'STANDARD',
        TracingConfiguration: { Enabled: true },
      });
      template.hasResourceProperties('AWS::IAM::Policy', {
        PolicyDocument: { Statement: Match.arrayWith([
          Match.objectLike({ Action: 'lambda:InvokeFunction' })]) },
      });
    });

  it('refuses a copy timeout beyond what Lambda allows', () => {
    // Act
    const act = () => build({ copyTimeout: Duration.minutes(20) });

    // Assess
    expect(act).toThrow(
      /copyTimeout is 20 minutes; set it between 30 seconds and 15 minutes/);
  });
});

describe('synthesizeWorkflowDefinition', () => {
  it('gives the deployed definition with placeholder functions', () => {
    // Act
    const definition = synthesizeWorkflowDefinition();

    // Assess
    expect(definition.StartAt).toBe(StateName.listAndSelect);
    expect(definition.States[StateName.listAndSelect]).toMatchObject({
      Type: 'Task',
      Resource: expect.stringMatching(/^arn:aws:lambda:.*:function:/),
    });
    expect(definition.TimeoutSeconds).toBe(24 * 3600);
  });

  it('is a definition the local executor accepts', () => {
    // Act
    const act = () => new StateMachine(synthesizeWorkflowDefinition() as never,
      { validationOptions: { checkArn: true, checkPaths: true } });

    // Assess
    expect(act).not.toThrow();
  });
});

describe('workflowDefinition', () => {
  it('keeps the synthesized definition in the state directory and reuses '
    + 'it', async () => {
    // Prepare
    const dir = await makeTempDir('definition');
    try {
      // Act
      const first = await workflowDefinition(dir);
      const [file] = await readdir(join(dir, 'workflow'));
      const path = join(dir, 'workflow', file!);
      const kept = JSON.parse(await readFile(path, 'utf8'));
      await writeFile(path, JSON.stringify({ ...kept, Comment: 'cached' }));
      const second = await workflowDefinition(dir);

      // Assess
      expect(first).toEqual(synthesizeWorkflowDefinition());
      expect(file).toMatch(/^definition-[0-9a-f]{16}\.json$/);
      expect(second.Comment).toBe('cached');
    } finally {
      await removeDir(dir);
    }
  });
});
