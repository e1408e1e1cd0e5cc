// Summarize: every result of the run, totalled into a small summary.
//
// Also moves the inventory on (what the backup now holds, for the next
// run's gone-from-source report) and keeps the summary in the run's record,
// where the CLI and `status` read it even when the execution failed.

import { nextInventory } from '../plan/index.js';
import type { ImageResult, PlannedImage } from '../store/types.js';
import { describeCaught } from './copy-image.js';
import { QUIET_LOGGER, type RunDeps } from './deps.js';
import { mapLimit } from './limit.js';
import { getRunRecord, inventoryKey, putRunRecord } from './record.js';
import type {
  FailedImage, RunSummary, SummarizeInput,
} from './types.js';

/** Failures named in the summary; the RunStore keeps every one. */
export const MAX_FAILURES_LISTED = 20;

/** Gone-from-source tags named in the summary. */
export const MAX_GONE_IN_SUMMARY = 50;

/** Step Functions keeps at most 32,768 characters of a Fail's cause. */
const MAX_CAUSE = 4000;

export async function summarize(input: SummarizeInput, deps: RunDeps):
  Promise<RunSummary> {
  const logger = deps.logger ?? QUIET_LOGGER;
  const now = deps.now ?? Date.now;
  const record = await getRunRecord(deps.runs, input.runId);
  const results = await deps.runs.listResults(input.runId);

  const summary = tally(record.runId, record.input.dryRun === true, results);
  summary.images.total = record.counts.images;
  summary.durationMs = now() - record.startedAt;
  summary.goneFromSource = {
    count: record.counts.goneFromSource,
    tags: record.goneFromSource.slice(0, MAX_GONE_IN_SUMMARY),
  };

  const missing = record.counts.images - results.length;
  if (input.failure) {
    // the fan-out itself failed: the target refused us, or a page broke
    const cause = describeCaught(input.failure);
    summary.error = {
      name: cause.name,
      message: `the run stopped before every image was done: ` +
        cause.message,
    };
  } else if (summary.images.failed > 0) {
    summary.error = {
      name: 'ImagesFailed',
      message: failureMessage(summary),
    };
  } else if (missing > 0) {
    summary.error = {
      name: 'ImagesMissing',
      message: `${missing} of ${record.counts.images} planned images have ` +
        'no result; rerun the backup',
    };
  }
  summary.succeeded = summary.error === undefined;
  if (summary.error) {
    summary.error.message = summary.error.message.slice(0, MAX_CAUSE);
  }

  if (!summary.dryRun) {
    await updateInventory(deps, inventoryKey(record.input, record.target),
      input.runId, record.pageCount, results);
  }
  await putRunRecord(deps.runs, { ...record, summary });

  logger.info('run summarized', {
    runId: record.runId, succeeded: summary.succeeded,
    ...summary.images, bytes: summary.bytesUploaded, ...summary.blobs,
    goneFromSource: summary.goneFromSource.count,
  });
  return summary;
}

/** Totals of a run's results; total and duration are the caller's. */
export function tally(runId: string, dryRun: boolean,
  results: readonly ImageResult[]): RunSummary {
  const summary: RunSummary = {
    runId,
    dryRun,
    succeeded: true,
    images: { total: results.length, copied: 0, upToDate: 0, failed: 0 },
    goneFromSource: { count: 0, tags: [] },
    blobs: { uploaded: 0, mounted: 0, skipped: 0, foreign: 0 },
    bytesUploaded: 0,
    durationMs: 0,
    failures: [],
  };

  const failures: FailedImage[] = [];
  for (const result of results) {
    if (result.status === 'copied') summary.images.copied++;
    if (result.status === 'up-to-date') summary.images.upToDate++;
    if (result.status === 'failed') {
      summary.images.failed++;
      failures.push({
        package: result.package, digest: result.digest, tags: result.tags,
        error: result.error ?? { name: 'Error', message: 'no reason given' },
      });
    }
    summary.blobs.uploaded += result.blobs.uploaded;
    summary.blobs.mounted += result.blobs.mounted;
    summary.blobs.skipped += result.blobs.skipped;
    summary.blobs.foreign += result.blobs.foreign;
    summary.bytesUploaded += result.bytesUploaded;
  }

  failures.sort((a, b) => a.package.localeCompare(b.package) ||
    a.digest.localeCompare(b.digest));
  summary.failures = failures.slice(0, MAX_FAILURES_LISTED);
  return summary;
}

/** `2 of 40 images failed: app:1.0 (NotFoundError: ...); ...` */
function failureMessage(summary: RunSummary): string {
  const named = summary.failures.map((failure) =>
    `${imageName(failure)} (${failure.error.name}: ` +
    `${failure.error.message.split('\n')[0]})`);
  const more = summary.images.failed - summary.failures.length;
  return `${summary.images.failed} of ${summary.images.total} images ` +
    `failed: ${named.join('; ')}${more > 0 ? `; and ${more} more` : ''}`;
}

/** `app:1.0,latest` or `app@sha256:...` for an image without tags. */
export function imageName(image: { package: string; digest: string;
  tags: string[] }): string {
  return image.tags.length > 0
    ? `${image.package}:${image.tags.join(',')}`
    : `${image.package}@${image.digest}`;
}

/**
 * Adds the tags now on the target (copied or already there) to the
 * inventory; a failed image adds nothing, and nothing is ever removed.
 */
async function updateInventory(deps: RunDeps, key: string, runId: string,
  pageCount: number, results: readonly ImageResult[]): Promise<void> {
  const held = new Set(results
    .filter((result) => result.status !== 'failed')
    .map((result) => `${result.package}#${result.digest}`));

  const pages = await mapLimit(
    Array.from({ length: pageCount }, (_, page) => page), 8,
    (page) => deps.runs.getPlanPage(runId, page));
  const images: PlannedImage[] = pages.flat()
    .filter((image) => held.has(`${image.package}#${image.digest}`));

  const previous = await deps.runs.getInventory(key);
  await deps.runs.putInventory(key, nextInventory(previous, images));
}
