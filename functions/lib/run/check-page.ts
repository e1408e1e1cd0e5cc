// CheckPage: which images of a plan page need a copy.
//
// The GitHub API already told us each tag's digest, so a tag is up to date
// when one manifest HEAD on the target answers that digest. Nothing is sent
// to the source registry for such a tag, which is what makes a rerun over
// an unchanged org cheap.

import { AuthenticationError, InvalidInputError } from '../errors.js';
import { parseRegistryLocation } from '../registry/reference.js';
import type { Registry } from '../registry/types.js';
import type { ImageResult, PlannedImage } from '../store/types.js';
import { QUIET_LOGGER, type RunDeps } from './deps.js';
import { mapLimit } from './limit.js';
import { getRunRecord } from './record.js';
import type { PageCheck, PageTask } from './types.js';

const DEFAULT_CHECK_CONCURRENCY = 16;

/**
 * Checks every image of one page on the target, records the up-to-date
 * ones, and returns the indexes of the others. Throws AuthenticationError
 * when the target refuses the credentials: every image would fail alike.
 */
export async function checkPage(task: PageTask, deps: RunDeps):
  Promise<PageCheck> {
  const { runId, page } = checkPageTask(task);
  const logger = deps.logger ?? QUIET_LOGGER;
  const now = deps.now ?? Date.now;

  const record = await getRunRecord(deps.runs, runId);
  const images = await deps.runs.getPlanPage(runId, page);
  const target = deps.registry(parseRegistryLocation(record.target).registry);

  const started = now();
  const current = await mapLimit(images,
    deps.checkConcurrency ?? DEFAULT_CHECK_CONCURRENCY,
    (image) => isUpToDate(target, image, logger));

  const work: number[] = [];
  const upToDate: ImageResult[] = [];
  const durationMs = now() - started;
  images.forEach((image, index) => {
    if (!current[index]) {
      work.push(index);
      return;
    }
    upToDate.push({
      package: image.package,
      digest: image.digest,
      tags: image.tags,
      status: 'up-to-date',
      blobs: { uploaded: 0, mounted: 0, skipped: 0, foreign: 0 },
      bytesUploaded: 0,
      durationMs: Math.round(durationMs / Math.max(1, images.length)),
    });
  });

  await mapLimit(upToDate, 8, async (result) => {
    await deps.runs.putResult(runId, result);
    deps.observer?.imageDone?.(result);
  });

  logger.info('page checked', {
    runId, page, images: images.length, upToDate: upToDate.length,
    needWork: work.length, ms: durationMs,
  });
  return { work, upToDate: upToDate.length };
}

/**
 * True when every tag of the image (its digest when it has none) resolves
 * to the planned digest on the target.
 */
async function isUpToDate(target: Registry, image: PlannedImage,
  logger: RunDeps['logger'] & object): Promise<boolean> {
  const references = image.tags.length > 0 ? image.tags : [image.digest];

  for (const reference of references) {
    try {
      const head = await target.headManifest(image.targetRepository,
        reference);
      if (head?.digest !== image.digest) return false;
    } catch (error) {
      // the target refusing us is the run's problem, not this image's
      if (refusesCredentials(error)) throw error;

      // anything else: let the copy try, and fail there with its reason
      logger.debug('target check failed, copying', {
        repository: image.targetRepository, reference,
        error: error instanceof Error ? error.message : String(error),
      });
      return false;
    }
  }
  return true;
}

/**
 * True for a registry that refuses our credentials outright (or got
 * none), as opposed to one that denies a single repository: some
 * registries answer a repository that does not exist yet with 403 or
 * insufficient_scope, and a push may still create it.
 */
export function refusesCredentials(error: unknown): boolean {
  if (!(error instanceof AuthenticationError)) return false;

  const scoped = (error as { insufficientScope?: boolean }).insufficientScope;
  return !scoped && error.status !== 403;
}

export function checkPageTask(task: unknown): { runId: string;
  page: number } {
  const value = task as Partial<PageTask> | null;
  if (typeof value?.runId !== 'string' || !Number.isInteger(value.page)) {
    throw new InvalidInputError('CheckPage expects {"runId", "page"}, got ' +
      JSON.stringify(task)?.slice(0, 200));
  }
  return { runId: value.runId, page: value.page! };
}
