// Rules both run stores follow for naming what they keep.

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
