// Runs and inventories, kept in files under the state directory:
//
//   runs/RUN/plan/000000.json   one file per plan page
//   runs/RUN/results.jsonl      one line per result; the last line of an
//                               image wins, so a rerun replaces it
//   runs/RUN/info.json
//   inventory/TARGET.json
//
// Whole files are replaced atomically (temp + rename) and results are
// appended, so concurrent writers never leave a file half written. A run
// folder untouched for `retentionDays` is deleted by the next store that
// starts writing.

import { readdir, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { NotFoundError } from '../errors.js';
import type {
  ImageResult, PlannedImage, RunStore, StoreLogger,
} from './types.js';
import {
  appendLine, errorCode, fileError, fileNameFor, parseLines, readOptional,
  splitLines, writeFileAtomic,
} from './local-files.js';
import { checkDays, checkRunId, pageLabel, resultKey } from './records.js';

export interface LocalRunStoreOptions {
  /** The state directory; runs live under `DIR/runs/`, inventories under
   * `DIR/inventory/`. */
  dir: string;
  /** Delete runs not written for this many days. Default 30. */
  retentionDays?: number;
  /** The clock, in epoch ms. Default `Date.now`. */
  now?: () => number;
  logger?: StoreLogger;
}

interface InventoryFile {
  format: 1;
  target: string;
  packages: Record<string, string[]>;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** A `RunStore` in local files. */
export class LocalRunStore implements RunStore {
  readonly #dir: string;
  readonly #retentionMs: number;
  readonly #now: () => number;
  readonly #logger?: StoreLogger;
  #pruned?: Promise<void>;

  constructor(options: LocalRunStoreOptions) {
    const days = options.retentionDays ?? 30;
    checkDays('retentionDays', days);

    this.#dir = options.dir;
    this.#retentionMs = days * DAY_MS;
    this.#now = options.now ?? Date.now;
    this.#logger = options.logger;
  }

  async putPlanPage(runId: string, page: number, images: PlannedImage[]):
    Promise<void> {
    await this.#written(runId, () => writeFileAtomic(
      this.#pagePath(runId, page), JSON.stringify(images)));
  }

  async getPlanPage(runId: string, page: number): Promise<PlannedImage[]> {
    const path = this.#pagePath(runId, page);
    const text = await readOptional(path);
    if (text === undefined) {
      throw new NotFoundError(
        `plan page ${page} of run ${runId} is not in ${this.#dir}`,
        { hint: 'the run expired, or was started with another --state' });
    }
    return JSON.parse(text.toString('utf8')) as PlannedImage[];
  }

  async putResult(runId: string, result: ImageResult): Promise<void> {
    await this.#written(runId, () => appendLine(
      join(this.#runDir(runId), 'results.jsonl'), JSON.stringify(result)));
  }

  async listResults(runId: string): Promise<ImageResult[]> {
    const path = join(this.#runDir(runId), 'results.jsonl');
    const text = await readOptional(path);
    if (text === undefined) return [];

    // a line still being written is left out, like one that does not parse
    const { lines } = splitLines(text);
    const results = parseLines<ImageResult>(lines, (line) => {
      this.#logger?.warn('skipped an unreadable result', {
        runId, line: line.slice(0, 200) });
    });

    const latest = new Map<string, ImageResult>();
    for (const result of results) {
      latest.set(resultKey(result), result);
    }
    return [...latest.entries()].sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([, result]) => result);
  }

  async putRunInfo(runId: string, info: Record<string, unknown>):
    Promise<void> {
    await this.#written(runId, () => writeFileAtomic(
      join(this.#runDir(runId), 'info.json'), JSON.stringify(info)));
  }

  async getRunInfo(runId: string):
    Promise<Record<string, unknown> | undefined> {
    const text = await readOptional(join(this.#runDir(runId), 'info.json'));
    return text === undefined ? undefined
      : JSON.parse(text.toString('utf8')) as Record<string, unknown>;
  }

  async getInventory(target: string): Promise<Map<string, string[]>> {
    const text = await readOptional(this.#inventoryPath(target));
    if (text === undefined) return new Map();

    const file = JSON.parse(text.toString('utf8')) as InventoryFile;
    return new Map(Object.entries(file.packages));
  }

  async putInventory(target: string, inventory: Map<string, string[]>):
    Promise<void> {
    const file: InventoryFile = { format: 1, target,
      packages: Object.fromEntries(inventory) };
    await writeFileAtomic(this.#inventoryPath(target), JSON.stringify(file));
  }

  /**
   * Deletes runs whose folder was not written for `retentionDays`. Runs
   * once by itself before a store's first write; returns how many went.
   */
  async pruneExpiredRuns(): Promise<number> {
    const runsDir = join(this.#dir, 'runs');
    let names: string[];
    try {
      names = await readdir(runsDir);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return 0;
      throw fileError(error, 'list', runsDir);
    }

    const cutoff = this.#now() - this.#retentionMs;
    let removed = 0;
    for (const name of names) {
      const path = join(runsDir, name);
      const info = await stat(path).catch(() => undefined);
      if (!info?.isDirectory() || info.mtimeMs >= cutoff) continue;

      await rm(path, { recursive: true, force: true });
      removed++;
    }
    if (removed > 0) {
      this.#logger?.debug('deleted expired runs', { removed, dir: runsDir });
    }
    return removed;
  }

  /** Runs a write to a run, then marks the run as written now. */
  async #written(runId: string, write: () => Promise<unknown>):
    Promise<void> {
    this.#pruned ??= this.pruneExpiredRuns().then(() => undefined,
      (error: unknown) => {
        this.#logger?.warn('could not delete expired runs', {
          error: String(error) });
      });
    await this.#pruned;

    await write();

    const seconds = this.#now() / 1000;
    await utimes(this.#runDir(runId), seconds, seconds).catch((error) => {
      throw fileError(error, 'touch', this.#runDir(runId));
    });
  }

  #runDir(runId: string): string {
    checkRunId(runId);
    return join(this.#dir, 'runs', fileNameFor(runId));
  }

  #pagePath(runId: string, page: number): string {
    return join(this.#runDir(runId), 'plan', `${pageLabel(page)}.json`);
  }

  #inventoryPath(target: string): string {
    return join(this.#dir, 'inventory', `${fileNameFor(target)}.json`);
  }
}
