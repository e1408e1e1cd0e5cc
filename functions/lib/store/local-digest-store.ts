// Where blobs went, kept in files under the state directory.
//
// Each target registry has a folder with a snapshot (every location known
// when it was written) and an append-only log of what was remembered and
// forgotten since. Writers only ever append, so processes sharing the
// folder never lose each other's records; a store reads the folder once
// and answers lookups from memory. When a log has grown large, the store
// that opens it folds it into a new snapshot, under a lock file that only
// compaction takes:
//
//   rename log -> log.ID.compacting; merge snapshot + *.compacting;
//   write snapshot (temp + rename); delete the *.compacting files read
//
// A writer whose line landed in a log that was renamed away meanwhile
// appends it again to the new log; a reader reads the log, then any
// *.compacting files, then the snapshot, so whatever moves between them
// is seen at least once. Every record carries the time it was made and
// the newest record for a location wins, which makes reading the same
// record twice, or out of order, harmless.

import {
  open, readdir, rename, rm, unlink, type FileHandle,
} from 'node:fs/promises';
import { join } from 'node:path';
import type { DigestStore, StoreLogger } from './types.js';
import {
  appendLine, errorCode, fileError, fileNameFor, parseLines, readOptional,
  splitLines, statOptional, uniqueSuffix, writeFileAtomic,
} from './local-files.js';
import { newestFirst, strictClock } from './records.js';

export interface LocalDigestStoreOptions {
  /** The state directory; locations live under `DIR/digests/`. */
  dir: string;
  /**
   * Fold a registry's log into its snapshot when opening finds the log
   * larger than this many bytes. Default 4 MiB.
   */
  compactAfterBytes?: number;
  /** The clock, in epoch ms. Default `Date.now`. */
  now?: () => number;
  logger?: StoreLogger;
}

/** One line of a log: blobs that `repository` gained (+) or lost (-). */
interface LogRecord {
  op: '+' | '-';
  repository: string;
  digests: string[];
  at: number;
}

interface Snapshot {
  format: 1;
  registry: string;
  /** digest -> repository -> when it was remembered (epoch ms). */
  locations: Record<string, Record<string, number>>;
}

const LOG = 'log.jsonl';
const SNAPSHOT = 'snapshot.json';
const LOCK = 'compact.lock';
const COMPACTING = /^log\..+\.compacting$/;

// a compaction takes well under a second; a lock this old was left behind
// by a process that died while holding it
const STALE_LOCK_MS = 10 * 60 * 1000;

/**
 * A `DigestStore` in local files, safe to share between processes.
 * Lookups are answered from memory; locations another process remembers
 * are seen after this store's next `remember` or `forget`. Call `close`
 * when done to release the open log files.
 */
export class LocalDigestStore implements DigestStore {
  readonly #dir: string;
  readonly #compactAfterBytes: number;
  readonly #clock: () => number;
  readonly #logger?: StoreLogger;
  readonly #registries = new Map<string, Promise<RegistryLocations>>();

  constructor(options: LocalDigestStoreOptions) {
    this.#dir = options.dir;
    this.#compactAfterBytes = options.compactAfterBytes ?? 4 * 1024 * 1024;
    this.#clock = strictClock(options.now ?? Date.now);
    this.#logger = options.logger;
  }

  async locate(registry: string, digest: string): Promise<string[]> {
    const locations = await this.#open(registry);
    return locations.locate(digest);
  }

  async remember(registry: string, repository: string,
    digests: readonly string[]): Promise<void> {
    if (digests.length === 0) return;

    const locations = await this.#open(registry);
    await locations.write({ op: '+', repository,
      digests: [...new Set(digests)], at: this.#clock() });
  }

  async forget(registry: string, repository: string, digest: string):
    Promise<void> {
    const locations = await this.#open(registry);
    await locations.write({ op: '-', repository, digests: [digest],
      at: this.#clock() });
  }

  /** Releases the log files this store holds open. */
  async close(): Promise<void> {
    const opened = [...this.#registries.values()];
    this.#registries.clear();

    const results = await Promise.allSettled(opened);
    for (const result of results) {
      if (result.status === 'fulfilled') await result.value.close();
    }
  }

  #open(registry: string): Promise<RegistryLocations> {
    let opened = this.#registries.get(registry);
    if (!opened) {
      const folder = join(this.#dir, 'digests', fileNameFor(registry));
      opened = RegistryLocations.open(folder, registry,
        this.#compactAfterBytes, this.#logger);

      // a failed open is retried by the next call rather than cached
      opened.catch(() => this.#registries.delete(registry));
      this.#registries.set(registry, opened);
    }
    return opened;
  }
}

/** The locations of one registry: its folder, and what it says, in memory. */
class RegistryLocations {
  readonly #folder: string;
  readonly #registry: string;
  readonly #logger?: StoreLogger;

  /** digest -> repository -> when remembered. */
  #locations = new Map<string, Map<string, number>>();
  /** `digest repository` -> when forgotten, for records read late. */
  #forgotten = new Map<string, number>();

  /** The log as last read, held open so its inode is never reused. */
  #log?: FileHandle;
  #logIno = -1;
  #logOffset = 0;

  /** Reads and writes of this folder, one at a time. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(folder: string, registry: string,
    logger?: StoreLogger) {
    this.#folder = folder;
    this.#registry = registry;
    this.#logger = logger;
  }

  static async open(folder: string, registry: string,
    compactAfterBytes: number, logger?: StoreLogger):
    Promise<RegistryLocations> {
    const locations = new RegistryLocations(folder, registry, logger);
    await locations.#compactIfLarge(compactAfterBytes);
    await locations.#load();
    return locations;
  }

  locate(digest: string): string[] {
    return newestFirst(this.#locations.get(digest) ?? []);
  }

  write(record: LogRecord): Promise<void> {
    return this.#serially(async () => {
      await this.#append(record);
      await this.#catchUp();

      // already read back from the log, unless it moved away meanwhile
      this.#apply(record);
    });
  }

  async close(): Promise<void> {
    await this.#serially(async () => {
      await this.#log?.close();
      this.#log = undefined;
    });
  }

  #serially<T>(step: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(step, step);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #append(record: LogRecord): Promise<void> {
    const path = join(this.#folder, LOG);
    const line = JSON.stringify(record);

    // a compaction may rename the log between our open and our write; the
    // line is then appended again, to the log that replaced it
    for (let attempt = 0; attempt < 5; attempt++) {
      const writtenTo = await appendLine(path, line);
      if (await inodeOf(path) === writtenTo) return;
    }
    this.#logger?.warn('the blob location log kept moving while written', {
      registry: this.#registry, path });
  }

  /** Applies what other writers appended since the log was last read. */
  async #catchUp(): Promise<void> {
    const path = join(this.#folder, LOG);
    const current = await inodeOf(path);

    if (current === undefined) return;
    if (current !== this.#logIno) {
      // compacted since we read it: what we had not read is in the new
      // snapshot or log
      await this.#load();
      return;
    }
    await this.#readLog();
  }

  async #load(): Promise<void> {
    this.#locations = new Map();
    this.#forgotten = new Map();
    await this.#log?.close();
    this.#log = undefined;
    this.#logIno = -1;
    this.#logOffset = 0;

    // log, then logs being compacted, then snapshot: see the file comment
    try {
      this.#log = await open(join(this.#folder, LOG), 'r');
      this.#logIno = (await this.#log.stat()).ino;
      await this.#readLog();
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') {
        throw fileError(error, 'read', join(this.#folder, LOG));
      }
    }

    await this.#applyCompactingAndSnapshot();
  }

  /**
   * Applies the logs being compacted, then the snapshot; returns the names
   * of the logs it read.
   */
  async #applyCompactingAndSnapshot(): Promise<string[]> {
    const names = await this.#compactingLogs();
    for (const name of names) {
      const text = await readOptional(join(this.#folder, name));
      if (text !== undefined) this.#applyLines(splitLines(text).lines);
    }

    this.#applySnapshot(await this.#readSnapshot());
    return names;
  }

  async #readLog(): Promise<void> {
    const log = this.#log;
    if (!log) return;

    const { size } = await log.stat();
    if (size <= this.#logOffset) return;

    const bytes = Buffer.alloc(size - this.#logOffset);
    const { bytesRead } = await log.read(bytes, 0, bytes.length,
      this.#logOffset);
    const { lines, consumed } = splitLines(bytes.subarray(0, bytesRead));
    this.#logOffset += consumed;
    this.#applyLines(lines);
  }

  #applyLines(lines: readonly string[]): void {
    const records = parseLines<LogRecord>(lines, (line) => {
      this.#logger?.warn('skipped an unreadable blob location record', {
        registry: this.#registry, line: line.slice(0, 200) });
    });
    for (const record of records) {
      if (isLogRecord(record)) this.#apply(record);
    }
  }

  #apply(record: LogRecord): void {
    for (const digest of record.digests) {
      if (record.op === '+') {
        this.#set(digest, record.repository, record.at);
      } else {
        this.#unset(digest, record.repository, record.at);
      }
    }
  }

  #set(digest: string, repository: string, at: number): void {
    const gone = this.#forgotten.get(`${digest} ${repository}`);
    if (gone !== undefined && gone >= at) return;

    let holders = this.#locations.get(digest);
    if (!holders) {
      holders = new Map();
      this.#locations.set(digest, holders);
    }
    if ((holders.get(repository) ?? -1) < at) holders.set(repository, at);
  }

  #unset(digest: string, repository: string, at: number): void {
    const key = `${digest} ${repository}`;
    if ((this.#forgotten.get(key) ?? -1) < at) this.#forgotten.set(key, at);

    const holders = this.#locations.get(digest);
    const since = holders?.get(repository);
    if (holders && since !== undefined && since <= at) {
      holders.delete(repository);
      if (holders.size === 0) this.#locations.delete(digest);
    }
  }

  #applySnapshot(snapshot: Snapshot | undefined): void {
    for (const [digest, holders] of Object.entries(
      snapshot?.locations ?? {})) {
      for (const [repository, at] of Object.entries(holders)) {
        this.#set(digest, repository, at);
      }
    }
  }

  async #readSnapshot(): Promise<Snapshot | undefined> {
    const path = join(this.#folder, SNAPSHOT);
    const text = await readOptional(path);
    if (text === undefined) return undefined;

    try {
      const snapshot = JSON.parse(text.toString('utf8')) as Snapshot;
      if (snapshot.format === 1 && typeof snapshot.locations === 'object') {
        return snapshot;
      }
    } catch {
      // reported below, like an unknown format
    }

    // the locations are only hints: losing them costs uploads, not data
    this.#logger?.warn('ignored an unreadable blob location snapshot', {
      registry: this.#registry, path });
    return undefined;
  }

  async #compactingLogs(): Promise<string[]> {
    try {
      const names = await readdir(this.#folder);
      return names.filter((name) => COMPACTING.test(name)).sort();
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return [];
      throw fileError(error, 'list', this.#folder);
    }
  }

  async #compactIfLarge(limit: number): Promise<void> {
    const logSize = (await statOptional(join(this.#folder, LOG)))?.size ?? 0;
    const leftovers = await this.#compactingLogs();
    if (logSize <= limit && leftovers.length === 0) return;

    const lock = await this.#takeLock();
    if (!lock) return;

    try {
      await this.#compact();
    } finally {
      await unlink(lock).catch(() => undefined);
    }
  }

  async #compact(): Promise<void> {
    const started = Date.now();

    // new writers start a fresh log from here on
    const moved = join(this.#folder,
      `log.${started}-${uniqueSuffix()}.compacting`);
    await renameOptional(join(this.#folder, LOG), moved);

    // merge everything into this object's memory, then write it out
    const names = await this.#applyCompactingAndSnapshot();

    const snapshot: Snapshot = { format: 1, registry: this.#registry,
      locations: {} };
    for (const [digest, holders] of this.#locations) {
      snapshot.locations[digest] = Object.fromEntries(holders);
    }
    await writeFileAtomic(join(this.#folder, SNAPSHOT),
      JSON.stringify(snapshot));

    for (const name of names) {
      await rm(join(this.#folder, name), { force: true });
    }
    this.#logger?.debug('compacted the blob location log', {
      registry: this.#registry, digests: this.#locations.size,
      logs: names.length, ms: Date.now() - started });
  }

  /** The lock file's path when taken, undefined when another holds it. */
  async #takeLock(): Promise<string | undefined> {
    const path = join(this.#folder, LOCK);

    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const handle = await open(path, 'wx');
        await handle.writeFile(`${process.pid}\n`);
        await handle.close();
        return path;
      } catch (error) {
        if (errorCode(error) !== 'EEXIST') {
          throw fileError(error, 'lock', path);
        }
      }

      const held = await statOptional(path);
      if (held && Date.now() - held.mtimeMs < STALE_LOCK_MS) {
        this.#logger?.debug('another process is compacting; skipped', {
          registry: this.#registry });
        return undefined;
      }
      await unlink(path).catch(() => undefined);
    }
    return undefined;
  }
}

function isLogRecord(value: unknown): value is LogRecord {
  const record = value as LogRecord;
  return typeof record === 'object' && record !== null &&
    (record.op === '+' || record.op === '-') &&
    typeof record.repository === 'string' &&
    Array.isArray(record.digests) && typeof record.at === 'number';
}

async function inodeOf(path: string): Promise<number | undefined> {
  return (await statOptional(path))?.ino;
}

async function renameOptional(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw fileError(error, 'move', from);
  }
}
