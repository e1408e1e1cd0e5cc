// The run's own record in the RunStore: what it was asked, what it found,
// and at the end its summary. Written by ListAndSelect, read by every
// later step (cached per process: a Lambda container or the CLI serves
// many steps of one run), completed by Summarize.

import { InvalidInputError } from '../errors.js';
import type { RunStore } from '../store/types.js';
import type { ExecutionInput, RunState, RunSummary } from './types.js';

export interface RunRecord {
  format: 1;
  runId: string;
  startedAt: number;
  input: ExecutionInput;
  /** `[http://]host[:port][/path]`. */
  target: string;
  /** The source registry, `[http://]host[:port]`. */
  source: string;
  pageCount: number;
  counts: RunState['counts'];
  /** `package:tag` the backup holds and the source lost (bounded). */
  goneFromSource: string[];
  summary?: RunSummary;
}

/** Gone-from-source entries kept in the record and the summary. */
export const MAX_GONE_LISTED = 1000;

const cache = new Map<string, RunRecord>();
const CACHE_SIZE = 16;

export async function putRunRecord(runs: RunStore, record: RunRecord):
  Promise<void> {
  await runs.putRunInfo(record.runId, { ...record });
  remember(record);
}

/** The run's record; throws InvalidInputError when the run is unknown. */
export async function getRunRecord(runs: RunStore, runId: string):
  Promise<RunRecord> {
  const cached = cache.get(runId);
  if (cached) return cached;

  const info = await runs.getRunInfo(runId);
  if (!info || info.format !== 1) {
    throw new InvalidInputError(`run ${runId} is not in the run store`, {
      hint: 'the run expired or was started against another store; ' +
        'start a new execution',
    });
  }
  const record = info as unknown as RunRecord;
  remember(record);
  return record;
}

function remember(record: RunRecord): void {
  cache.delete(record.runId);
  cache.set(record.runId, record);
  while (cache.size > CACHE_SIZE) {
    cache.delete(cache.keys().next().value!);
  }
}

/**
 * Where a run keeps what the backup holds: per target and per owner, so
 * that two organisations backed up into one target never list each
 * other's packages as gone from the source.
 */
export function inventoryKey(input: ExecutionInput, target: string):
  string {
  const owner = input.org !== undefined ? `org:${input.org}`
    : `user:${input.user ?? ''}`;
  // GitHub account names are not case-sensitive
  return `${target}#${owner.toLowerCase()}`;
}

/** A run id that sorts by time: `20250102T030405Z-1a2b3c`. */
export function newRunId(now: number): string {
  const stamp = new Date(now).toISOString()
    .replace(/[-:]/g, '').replace(/\.\d+/, '');
  const random = Math.floor(Math.random() * 0x1000000)
    .toString(16).padStart(6, '0');
  return `${stamp}-${random}`;
}
