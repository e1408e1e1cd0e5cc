// The local runner over the real definition, with stand-in handlers:
// what it adds to aws-local-stepfunctions (the 256 KiB limit, a Lambda
// context, history counts) and how the definition behaves when images
// fail, retry or need a continuation.

import { describe, expect, it } from 'vitest';

import { StateName, synthesizeWorkflowDefinition }
  from '../infra/workflow.js';
import {
  NotFoundError, TransientError,
} from '../functions/lib/errors.js';
import {
  runWorkflowLocally, type LocalHandler,
} from '../functions/local/run-workflow.js';

const definition = synthesizeWorkflowDefinition();

interface Calls {
  copies: { index: number; page: number; previous: unknown }[];
  failures: { index: number; error: { Error: string; Cause?: string } }[];
  summarized: Record<string, unknown>[];
}

/**
 * Handlers for a run of `pages` pages of `work` images each; `copy`
 * decides each CopyImage's outcome.
 */
function handlers(options: {
  pages?: number;
  work?: number;
  copy?: (task: { page: number; index: number; previous: unknown },
    attempt: number) => Promise<unknown>;
  checkPage?: LocalHandler;
} = {}): { handlers: Record<string, LocalHandler>; calls: Calls } {
  const calls: Calls = { copies: [], failures: [], summarized: [] };
  const attempts = new Map<string, number>();
  const copy: LocalHandler = async (input) => {
    const task = input as { action?: string; page: number; index: number;
      previous: unknown; error: Calls['failures'][0]['error'] };
    if (task.action === 'record-failure') {
      calls.failures.push({ index: task.index, error: task.error });
      return {};
    }
    calls.copies.push(task);
    const key = `${task.page}/${task.index}`;
    const attempt = (attempts.get(key) ?? 0) + 1;
    attempts.set(key, attempt);
    return options.copy ? options.copy(task, attempt)
      : { status: 'copied' };
  };

  return {
    calls,
    handlers: {
      ListAndSelect: async () => ({
        runId: 'run-1',
        pages: Array.from({ length: options.pages ?? 2 }, (_, i) => i),
        concurrency: { pages: 2, images: 3 },
        dryRun: false,
        counts: { packages: 1, images: 0, tags: 0, goneFromSource: 0 },
      }),
      CheckPage: options.checkPage ?? (async () => ({
        work: Array.from({ length: options.work ?? 3 }, (_, i) => i),
        upToDate: 0,
      })),
      CopyImage: copy,
      RecordCopyFailure: copy,
      Summarize: async (input) => {
        calls.summarized.push(input as Record<string, unknown>);
        const failed = calls.failures.length;
        if ((input as { failure?: unknown }).failure) {
          return { succeeded: false, error: { name: 'PagesFailed',
            message: 'a page failed' } };
        }
        return failed === 0 ? { succeeded: true }
          : { succeeded: false, error: { name: 'ImagesFailed',
            message: `${failed} images failed` } };
      },
    },
  };
}

describe('runWorkflowLocally', () => {
  it('copies every image of every page and succeeds', async () => {
    // Prepare
    const run = handlers({ pages: 3, work: 4 });

    // Act
    const report = await runWorkflowLocally({}, { definition,
      handlers: run.handlers });

    // Assess
    expect(report.status).toBe('succeeded');
    expect(report.output).toEqual({ succeeded: true });
    expect(run.calls.copies).toHaveLength(12);
    expect(run.calls.summarized[0]).toMatchObject({ runId: 'run-1' });
  });

  it('records a failed image, copies the others, and fails the run ' +
    'after the summary', async () => {
    // Prepare
    const run = handlers({ pages: 1, work: 3, copy: async (task) => {
      if (task.index === 1) throw new NotFoundError('manifest gone');
      return { status: 'copied' };
    } });

    // Act
    const report = await runWorkflowLocally({}, { definition,
      handlers: run.handlers });

    // Assess
    expect(report.status).toBe('failed');
    expect(report.error).toEqual({ name: 'ImagesFailed',
      message: '1 images failed' });
    expect(run.calls.failures).toEqual([{ index: 1,
      error: { Error: 'NotFoundError', Cause: 'manifest gone' } }]);
    expect(run.calls.copies.map((c) => c.index).sort()).toEqual([0, 1, 2]);
    expect(run.calls.summarized).toHaveLength(1);
  });

  it('retries a TransientError, then records it as a failure', async () => {
    // Prepare
    const run = handlers({ pages: 1, work: 1, copy: async () => {
      throw new TransientError('registry answered 503');
    } });

    // Act
    const report = await runWorkflowLocally({}, { definition,
      handlers: run.handlers, retryIntervalMs: 0 });

    // Assess: the first attempt and three retries
    expect(report.status).toBe('failed');
    expect(run.calls.copies).toHaveLength(4);
    expect(run.calls.failures[0]!.error.Error).toBe('TransientError');
  });

  it('continues an incomplete copy with what it did so far', async () => {
    // Prepare
    const progress = { blobs: { uploaded: 2, mounted: 0, skipped: 0,
      foreign: 0 }, bytesUploaded: 10, durationMs: 5 };
    const run = handlers({ pages: 1, work: 1, copy: async (_, attempt) =>
      attempt < 3 ? { status: 'incomplete', progress }
        : { status: 'copied' } });

    // Act
    const report = await runWorkflowLocally({}, { definition,
      handlers: run.handlers });

    // Assess
    expect(report.status).toBe('succeeded');
    expect(run.calls.copies.map((c) => c.previous)).toEqual([
      { status: 'new' },
      { status: 'incomplete', progress },
      { status: 'incomplete', progress },
    ]);
  });

  it('summarizes a fan-out that failed as a whole, with its error',
    async () => {
      // Prepare
      const run = handlers({ checkPage: async () => {
        throw new TransientError('target unreachable');
      } });

      // Act
      const report = await runWorkflowLocally({}, { definition,
        handlers: run.handlers, retryIntervalMs: 0 });

      // Assess
      expect(run.calls.summarized[0]).toMatchObject({
        failure: { Error: 'TransientError', Cause: 'target unreachable' } });
      expect(report.status).toBe('failed');
    });

  it('fails a run whose state output exceeds 256 KiB', async () => {
    // Prepare: a page check listing 100,000 indexes (~600 KB)
    const run = handlers({ checkPage: async () => ({
      work: Array.from({ length: 100_000 }, (_, i) => i), upToDate: 0 }) });

    // Act
    const report = await runWorkflowLocally({}, { definition,
      handlers: run.handlers });

    // Assess
    expect(report.status).toBe('failed');
    expect(report.error?.name).toBe('States.DataLimitExceeded');
    expect(report.error?.message).toMatch(/state CheckPage/);
    expect(run.calls.summarized).toEqual([]);
  });

  it('fails a run whose Map collects more than 256 KiB of results',
    async () => {
      // Prepare: each state output is small, 300 of them are not
      const big = 'x'.repeat(1024);
      const many = handlers({ pages: 1, work: 300,
        copy: async () => ({ status: 'copied', note: big }) });
      const noisy = structuredClone(definition);
      const images = (noisy.States[StateName.backupPages] as any)
        .ItemProcessor.States[StateName.copyImages];
      // keep the whole state: the iterations' outputs add up
      delete images.ItemProcessor.States[StateName.imageDone].OutputPath;

      // Act
      const report = await runWorkflowLocally({}, { definition: noisy,
        handlers: many.handlers });

      // Assess
      expect(report.status).toBe('failed');
      expect(report.error?.name).toBe('States.DataLimitExceeded');
      expect(report.error?.message).toMatch(/map result of state CopyImages/);
    });

  it('counts down a Lambda context from the Task timeout', async () => {
    // Prepare
    let remaining = 0;
    const run = handlers({ pages: 1, work: 1 });
    const copy = run.handlers.CopyImage!;
    run.handlers.CopyImage = async (input, context) => {
      remaining = context.getRemainingTimeInMillis();
      return copy(input, context);
    };

    // Act
    await runWorkflowLocally({}, { definition, handlers: run.handlers });

    // Assess: CopyImage's TimeoutSeconds is 900
    expect(remaining).toBeLessThanOrEqual(900_000);
    expect(remaining).toBeGreaterThan(800_000);
  });

  it('reports the error a handler threw when the run cannot go on',
    async () => {
      // Prepare
      const run = handlers();
      run.handlers.ListAndSelect = async () => {
        throw new NotFoundError('no organisation nope');
      };

      // Act
      const report = await runWorkflowLocally({}, { definition,
        handlers: run.handlers });

      // Assess
      expect(report.status).toBe('failed');
      expect(report.error).toEqual({ name: 'NotFoundError',
        message: 'no organisation nope' });
      expect(report.cause).toBeInstanceOf(NotFoundError);
    });

  it('refuses to start without a handler for every Task state',
    async () => {
      // Prepare
      const run = handlers();
      delete run.handlers.Summarize;

      // Act
      const act = runWorkflowLocally({}, { definition,
        handlers: run.handlers });

      // Assess
      await expect(act).rejects.toThrow(
        /no local handler for Task state\(s\) Summarize/);
    });

  it('counts each page as a child execution with its own history',
    async () => {
      // Prepare
      const run = handlers({ pages: 3, work: 10 });

      // Act
      const report = await runWorkflowLocally({}, { definition,
        handlers: run.handlers });

      // Assess: a page is its start and end (2), CheckPage (5), the
      // image Map (4) and per image its iteration (2), CopyImage (5),
      // CopyFinished (2) and ImageDone (2); the parent is its start and
      // end, two Tasks, the page Map, CheckOutcome and Done
      expect(report.history.children).toBe(3);
      expect(report.history.largestChild).toBe(2 + 5 + 4 + 10 * 11);
      expect(report.history.parent).toBe(2 + 2 * 5 + 4 + 2 + 2);
    });
});
