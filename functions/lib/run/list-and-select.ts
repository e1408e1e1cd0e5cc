// ListAndSelect: from the execution input to a stored plan.
//
// Lists the packages through the GitHub API, selects the tags to back up,
// stores the plan in pages and the run's record in the RunStore, and
// returns only the run id and page numbers: the plan never rides in the
// workflow's state.

import { InvalidInputError, TransientError } from '../errors.js';
import { listContainerPackages } from '../github/index.js';
import { formatRegistry } from '../registry/reference.js';
import {
  buildPlan, goneFromSource, pagesOf,
} from '../plan/index.js';
import { PLAN_PAGE_SIZE } from '../store/types.js';
import { refusesCredentials } from './check-page.js';
import { QUIET_LOGGER, type RunDeps } from './deps.js';
import { parseExecutionInput } from './input.js';
import { mapLimit } from './limit.js';
import {
  MAX_GONE_LISTED, inventoryKey, newRunId, putRunRecord, type RunRecord,
} from './record.js';
import type { RunState } from './types.js';

const DEFAULT_PAGE_CONCURRENCY = 4;

export interface ListAndSelectOptions {
  /** Images per plan page. @default PLAN_PAGE_SIZE */
  pageSize?: number;
  signal?: AbortSignal;
}

export async function listAndSelect(rawInput: unknown, deps: RunDeps,
  options: ListAndSelectOptions = {}): Promise<RunState> {
  const run = parseExecutionInput(rawInput);
  const logger = deps.logger ?? QUIET_LOGGER;
  const now = deps.now ?? Date.now;
  const startedAt = now();
  const runId = newRunId(startedAt);

  if (!deps.github) {
    throw new InvalidInputError('listing packages needs deps.github (the ' +
      'API and a token), and the caller gave none');
  }
  const listing = await listContainerPackages({
    ...(run.owner.kind === 'org'
      ? { org: run.owner.name } : { user: run.owner.name }),
    token: deps.github.token,
    baseUrl: deps.github.api,
    packages: run.packages,
    logger,
    signal: options.signal,
  });

  const images = buildPlan(listing, {
    excludeTags: run.excludeTags,
    allVersions: run.allVersions,
  }, { pathPrefix: run.target.path });
  const pages = pagesOf(images, options.pageSize ?? PLAN_PAGE_SIZE);

  // one request tells whether the target answers and takes our
  // credentials, before any work is fanned out; a repository it denies
  // is left for the copy to find out
  const first = images[0];
  if (first) {
    try {
      await deps.registry(run.target.registry).headManifest(
        first.targetRepository, first.tags[0] ?? first.digest,
        options.signal);
    } catch (error) {
      if (error instanceof TransientError || refusesCredentials(error)) {
        throw error;
      }
    }
  }

  const inventory = await deps.runs.getInventory(
    inventoryKey(run.input, run.targetText));
  const gone = goneFromSource(inventory, listing, { packages: run.packages })
    .flatMap((entry) => entry.tags.map((tag) => `${entry.package}:${tag}`));

  await mapLimit(pages, 8, (page, number) =>
    deps.runs.putPlanPage(runId, number, page));

  const counts: RunState['counts'] = {
    packages: listing.length,
    images: images.length,
    tags: images.reduce((sum, image) => sum + image.tags.length, 0),
    goneFromSource: gone.length,
  };
  const record: RunRecord = {
    format: 1,
    runId,
    startedAt,
    input: run.input,
    target: run.targetText,
    source: formatRegistry(deps.source),
    pageCount: pages.length,
    counts,
    goneFromSource: gone.slice(0, MAX_GONE_LISTED),
  };
  await putRunRecord(deps.runs, record);

  const state: RunState = {
    runId,
    pages: pages.map((_, number) => number),
    concurrency: {
      pages: deps.pageConcurrency ?? DEFAULT_PAGE_CONCURRENCY,
      images: run.concurrency,
    },
    dryRun: run.dryRun,
    counts,
  };
  deps.observer?.planned?.(state);
  logger.info('plan stored', {
    runId, target: run.targetText, pages: pages.length, ...counts,
    ms: now() - startedAt,
  });
  return state;
}
