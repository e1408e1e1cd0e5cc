// File primitives the local stores share: names that are safe as file
// names, whole-file writes that readers never see half done, and
// append-only logs of JSON lines that several processes may write at once.

import { createHash, randomBytes } from 'node:crypto';
import {
  mkdir, open, readFile, rename, rm, stat,
} from 'node:fs/promises';
import { dirname } from 'node:path';
import { InvalidInputError } from '../errors.js';

/**
 * A file name for a key (a registry, a run id, a target): readable where
 * the key allows, never a path, never `.` or `..`, and short enough for
 * any file system however long the key.
 */
export function fileNameFor(key: string): string {
  const encoded = encodeURIComponent(key).replace(/^\./, '%2E');
  if (encoded.length <= 120) return encoded;

  // long keys keep a readable head and stay unique through a hash
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 32);
  return `${encoded.slice(0, 80)}~${hash}`;
}

/** A name no other writer, in this process or another, will pick. */
export function uniqueSuffix(): string {
  return `${process.pid}-${randomBytes(6).toString('hex')}`;
}

/**
 * Replaces `path` with `data` so that a reader sees the old or the new
 * content, never a mix: write a temporary file beside it, flush it, rename.
 */
export async function writeFileAtomic(path: string, data: string):
  Promise<void> {
  const temp = `${path}.tmp-${uniqueSuffix()}`;

  try {
    await mkdir(dirname(path), { recursive: true });
    const handle = await open(temp, 'w');
    try {
      await handle.writeFile(data, 'utf8');
      await handle.datasync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw fileError(error, 'write', path);
  }
}

/**
 * Appends one line with a single write on a descriptor opened for
 * appending, so lines of concurrent writers never interleave. Returns the
 * inode the line went to, for callers that must notice a log that was
 * renamed away while they wrote.
 */
export async function appendLine(path: string, line: string):
  Promise<number> {
  // the leading newline ends the torn line a writer that died mid-write
  // may have left, so that it does not swallow this one; readers skip
  // empty lines
  const data = Buffer.from(`\n${line}\n`, 'utf8');

  try {
    await mkdir(dirname(path), { recursive: true });
    const handle = await open(path, 'a');
    try {
      let written = 0;
      while (written < data.length) {
        const { bytesWritten } = await handle.write(
          data, written, data.length - written);
        written += bytesWritten;
      }
      return (await handle.stat()).ino;
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw fileError(error, 'append to', path);
  }
}

/**
 * Splits bytes read from a log into complete lines. A last line without
 * its newline is a write still in progress: it is left for the next read,
 * and `consumed` says how many bytes the complete lines took.
 */
export function splitLines(bytes: Buffer): { lines: string[];
  consumed: number } {
  const end = bytes.lastIndexOf(0x0a);
  if (end < 0) return { lines: [], consumed: 0 };

  const lines = bytes.subarray(0, end).toString('utf8').split('\n')
    .filter((line) => line.length > 0);
  return { lines, consumed: end + 1 };
}

/** Parses JSON lines, skipping (and reporting) any that do not parse. */
export function parseLines<T>(lines: readonly string[],
  onBadLine: (line: string) => void): T[] {
  const values: T[] = [];
  for (const line of lines) {
    try {
      values.push(JSON.parse(line) as T);
    } catch {
      onBadLine(line);
    }
  }
  return values;
}

/** The file's bytes, or undefined when there is no such file. */
export async function readOptional(path: string):
  Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw fileError(error, 'read', path);
  }
}

/** The file's stats, or undefined when there is no such file. */
export async function statOptional(path: string) {
  try {
    return await stat(path);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw fileError(error, 'read', path);
  }
}

/** The error code of a failed file operation, if it has one. */
export function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Turns a file system error the user can fix into one that says so;
 * anything else is passed through unchanged.
 */
export function fileError(error: unknown, action: string, path: string):
  unknown {
  const code = errorCode(error);

  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new InvalidInputError(
      `cannot ${action} ${path}: the state directory is not writable (${code})`,
      { hint: 'choose a writable directory with --state', cause: error });
  }
  if (code === 'ENOTDIR' || code === 'EEXIST') {
    return new InvalidInputError(
      `cannot ${action} ${path}: a file stands where a directory should (${code})`,
      { hint: 'point --state at a directory of its own', cause: error });
  }
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new InvalidInputError(
      `cannot ${action} ${path}: no space left on the device (${code})`,
      { hint: 'free some space or choose another --state directory',
        cause: error });
  }
  return error;
}
