// Rules the stores share: how records are named, ordered and timed.

import { InvalidInputError } from '../errors.js';
import type { ImageResult } from './types.js';

/**
 * Plan pages are numbered 0 to 999,999: six digits in keys and file names,
 * so that pages sort in order and no page's key is a prefix of another's.
 */
export function pageLabel(page: number): string {
  if (!Number.isInteger(page) || page < 0 || page > 999_999) {
    throw new InvalidInputError(
      `plan page must be an integer from 0 to 999999, got ${page}`);
  }
  return String(page).padStart(6, '0');
}

/** What makes a result unique in a run: its package and digest. */
export function resultKey(result: Pick<ImageResult, 'package' | 'digest'>):
  string {
  return `${result.package}#${result.digest}`;
}

/** Run ids become keys and folder names: they must say something. */
export function checkRunId(runId: string): void {
  if (runId.length === 0) {
    throw new InvalidInputError('a run id must not be empty');
  }
}

/** Checks a retention option: a positive number of days. */
export function checkDays(option: string, days: number): void {
  if (!(days > 0)) {
    throw new InvalidInputError(
      `${option} must be a positive number of days, got ${days}`);
  }
}

/**
 * A clock that never repeats a value, so that two remembers in one
 * millisecond still order their locations.
 */
export function strictClock(now: () => number): () => number {
  let last = 0;
  return () => {
    last = Math.max(now(), last + 1);
    return last;
  };
}

/**
 * Repositories holding a blob, from `[repository, when remembered]`: the
 * most recently remembered first, ties by name.
 */
export function newestFirst(holders: Iterable<readonly [string, number]>):
  string[] {
  return [...holders]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([repository]) => repository);
}
