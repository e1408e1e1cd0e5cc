// CopyImage and RecordCopyFailure: one planned image, copied or failed.
//
// A copy that reaches its deadline returns 'incomplete' with what it did so
// far; the workflow calls again and the engine skips what is on the target.
// An image that cannot be copied is recorded as failed with its reason and
// never stops the others. Only transient errors are thrown, so the
// workflow retries them with backoff (and records them when retries run
// out); anything unexpected is thrown too and caught by the workflow.

import { copyImage } from '../copy/engine.js';
import type { CopyResult } from '../copy/types.js';
import {
  BackupError, InvalidInputError, TransientError, redact,
} from '../errors.js';
import { RegistryAuthenticationError } from '../registry/errors.js';
import { parseRegistryLocation } from '../registry/reference.js';
import type { RegistryEndpoint } from '../registry/types.js';
import { refusesCredentials } from './check-page.js';
import type { ImageResult, PlannedImage } from '../store/types.js';
import { QUIET_LOGGER, type RunDeps } from './deps.js';
import { measureImage } from './measure.js';
import { getRunRecord } from './record.js';
import type {
  CaughtError, CopyOutcome, CopyProgress, FailureTask, ImageTask,
} from './types.js';

const DEFAULT_BLOB_CONCURRENCY = 4;

/** Long enough for a reason with its hint; bounded for the state. */
const MAX_MESSAGE = 1000;

export interface CopyStepOptions {
  /** Stop starting new blobs after this time (epoch ms). */
  deadline?: number;
  signal?: AbortSignal;
}

/** Copies (or, in a dry run, measures) one image of the plan. */
export async function copyPlannedImage(task: unknown, deps: RunDeps,
  options: CopyStepOptions = {}): Promise<CopyOutcome> {
  const { runId, page, index, previous } = checkImageTask(task);
  const logger = deps.logger ?? QUIET_LOGGER;
  const now = deps.now ?? Date.now;

  const record = await getRunRecord(deps.runs, runId);
  const image = await plannedImage(deps, runId, page, index);
  const target = parseRegistryLocation(record.target).registry;
  const source = parseRegistryLocation(record.source).registry;
  const started = now();

  let result: CopyResult;
  try {
    if (record.input.dryRun) {
      result = await measure(deps, image, source, target, options);
    } else {
      await deps.prepareRepository?.(target, image.targetRepository);
      result = await copyImage({
        source: {
          registry: deps.registry(source),
          repository: image.sourceRepository,
          reference: image.digest,
          digest: image.digest,
        },
        target: {
          registry: deps.registry(target),
          repository: image.targetRepository,
          tags: image.tags,
        },
        store: deps.digests,
        concurrency: deps.blobConcurrency ?? DEFAULT_BLOB_CONCURRENCY,
        referrers: true,
        deadline: options.deadline,
        signal: options.signal,
        onEvent: (event) => deps.observer?.copyEvent?.(image, event),
        logger,
      });
    }
  } catch (error) {
    // transient: the workflow retries with backoff; unknown: a bug or a
    // crash, caught by the workflow and recorded there
    if (error instanceof TransientError || !(error instanceof BackupError)) {
      throw error;
    }
    await putFailure(deps, runId, image, {
      name: error.name, message: describeFailure(error, source),
    }, now() - started);
    return { status: 'failed' };
  }

  const progress = addProgress(previous, result);
  if (result.status === 'incomplete') {
    logger.info('copy continues in a new invocation', {
      runId, package: image.package, digest: image.digest,
      bytes: progress.bytesUploaded,
    });
    return { status: 'incomplete', progress };
  }

  const done: ImageResult = {
    package: image.package,
    digest: image.digest,
    tags: image.tags,
    status: result.status,
    blobs: progress.blobs,
    bytesUploaded: progress.bytesUploaded,
    durationMs: progress.durationMs,
  };
  await deps.runs.putResult(runId, done);
  deps.observer?.imageDone?.(done);
  logger.info(record.input.dryRun ? 'image measured' : 'image done', {
    runId, package: image.package, digest: image.digest,
    status: done.status, bytes: done.bytesUploaded, ms: done.durationMs,
    ...done.blobs,
  });
  return { status: done.status };
}

/**
 * The reason an image failed, as the run's user can act on it. The
 * registry client's hint for refused credentials is `docker login`, but a
 * run pulls from the source with the GitHub token that just listed the
 * packages, so a refusal there is about that token.
 */
function describeFailure(error: BackupError, source: RegistryEndpoint):
  string {
  const refused = error instanceof RegistryAuthenticationError &&
    error.context.registry === source.host && refusesCredentials(error);
  if (!refused) return error.describe();

  return `${error.message}\n${source.host} refused the GitHub token the ` +
    'run pulls with, although the GitHub API accepted it: use a classic ' +
    'token with read:packages, authorized for the organisation\'s SAML ' +
    `single sign-on where it has one (a Docker config entry for ` +
    `${source.host} takes the token's place)`;
}

/** Records a copy that failed outside the handler's own catch. */
export async function recordCopyFailure(task: unknown, deps: RunDeps):
  Promise<Record<string, never>> {
  const { runId, page, index } = checkImageTask(task);
  const error = (task as Partial<FailureTask>).error;
  const image = await plannedImage(deps, runId, page, index);

  await putFailure(deps, runId, image, describeCaught(error), 0);
  return {};
}

/**
 * A caught error's name and message. From Lambda the Cause is a JSON
 * document with errorMessage (and a stack trace we leave out).
 */
export function describeCaught(error: CaughtError | undefined):
  { name: string; message: string } {
  const name = typeof error?.Error === 'string' ? error.Error : 'Error';
  let message = typeof error?.Cause === 'string' ? error.Cause : '';
  try {
    const parsed = JSON.parse(message) as { errorMessage?: unknown };
    if (typeof parsed?.errorMessage === 'string') {
      message = parsed.errorMessage;
    }
  } catch {
    // a plain message
  }
  return { name, message: message || 'no reason given' };
}

async function putFailure(deps: RunDeps, runId: string, image: PlannedImage,
  error: { name: string; message: string }, durationMs: number):
  Promise<void> {
  const failed: ImageResult = {
    package: image.package,
    digest: image.digest,
    tags: image.tags,
    status: 'failed',
    error: {
      name: error.name,
      message: redact(error.message).slice(0, MAX_MESSAGE),
    },
    blobs: { uploaded: 0, mounted: 0, skipped: 0, foreign: 0 },
    bytesUploaded: 0,
    durationMs,
  };
  await deps.runs.putResult(runId, failed);
  deps.observer?.imageDone?.(failed);
  (deps.logger ?? QUIET_LOGGER).warn('image failed', {
    runId, package: image.package, digest: image.digest,
    error: failed.error,
  });
}

async function measure(deps: RunDeps, image: PlannedImage,
  source: ReturnType<typeof parseRegistryLocation>['registry'],
  target: ReturnType<typeof parseRegistryLocation>['registry'],
  options: CopyStepOptions): Promise<CopyResult> {
  const started = (deps.now ?? Date.now)();
  const found = await measureImage({
    source: { registry: deps.registry(source),
      repository: image.sourceRepository },
    target: { registry: deps.registry(target),
      repository: image.targetRepository },
    digest: image.digest,
    store: deps.digests,
    signal: options.signal,
  });
  // CheckPage found a tag off the digest: at least that tag would move
  return {
    digest: image.digest,
    status: 'copied',
    blobs: found.blobs,
    bytesUploaded: found.bytes,
    manifestsPushed: 0,
    foreignLayers: [],
    durationMs: (deps.now ?? Date.now)() - started,
  };
}

function addProgress(previous: CopyProgress | undefined, result: CopyResult):
  CopyProgress {
  const before = previous ?? {
    blobs: { uploaded: 0, mounted: 0, skipped: 0, foreign: 0 },
    bytesUploaded: 0, durationMs: 0,
  };
  return {
    blobs: {
      uploaded: before.blobs.uploaded + result.blobs.uploaded,
      mounted: before.blobs.mounted + result.blobs.mounted,
      // a continuation walks the whole tree again: what the earlier
      // invocations uploaded or mounted is skipped now, count it once
      skipped: Math.max(before.blobs.skipped, result.blobs.skipped -
        before.blobs.uploaded - before.blobs.mounted),
      foreign: Math.max(before.blobs.foreign, result.blobs.foreign),
    },
    bytesUploaded: before.bytesUploaded + result.bytesUploaded,
    durationMs: before.durationMs + result.durationMs,
  };
}

const pageCache = new Map<string, Promise<PlannedImage[]>>();
const PAGE_CACHE_SIZE = 8;

/** One image of a page; pages are cached, a Lambda copies many of one. */
async function plannedImage(deps: RunDeps, runId: string, page: number,
  index: number): Promise<PlannedImage> {
  const key = `${runId}#${page}`;
  let pending = pageCache.get(key);
  if (!pending) {
    pending = deps.runs.getPlanPage(runId, page);
    pageCache.set(key, pending);
    pending.catch(() => pageCache.delete(key));
    while (pageCache.size > PAGE_CACHE_SIZE) {
      pageCache.delete(pageCache.keys().next().value!);
    }
  }

  const image = (await pending)[index];
  if (!image) {
    throw new InvalidInputError(
      `plan page ${page} of run ${runId} has no image ${index}`);
  }
  return image;
}

export function checkImageTask(task: unknown): Omit<ImageTask, 'previous'>
  & { previous?: CopyProgress } {
  const value = task as Partial<ImageTask> | null;
  if (typeof value?.runId !== 'string' || !Number.isInteger(value.page) ||
      !Number.isInteger(value.index)) {
    throw new InvalidInputError('CopyImage expects {"runId", "page", ' +
      `"index"}, got ${JSON.stringify(task)?.slice(0, 200)}`);
  }
  return {
    runId: value.runId, page: value.page!, index: value.index!,
    previous: value.previous && 'progress' in value.previous
      ? value.previous.progress : undefined,
  };
}

/**
 * When a copy must stop starting new blobs, given the time its invocation
 * has left: a quarter of it (at least ten seconds) stays free for the
 * blobs already streaming and for recording the result.
 */
export function copyDeadline(remainingMs: number, now: number): number {
  const margin = Math.max(10_000, remainingMs / 4);
  return now + Math.max(0, remainingMs - margin);
}

/**
 * The CopyImage function's entry: a copy, or the recording of a failure
 * the workflow caught (RecordCopyFailure invokes the same function).
 */
export function copyStep(task: unknown, deps: RunDeps,
  options: CopyStepOptions = {}): Promise<CopyOutcome | Record<string, never>> {
  return (task as Partial<FailureTask> | null)?.action === 'record-failure'
    ? recordCopyFailure(task, deps)
    : copyPlannedImage(task, deps, options);
}
