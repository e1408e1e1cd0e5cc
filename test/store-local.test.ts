// What only the local stores have to get right: processes sharing one
// state directory, logs compacted while others write, lines torn by a
// writer that died, and old runs cleaned away.

import { appendFile, mkdir, readdir, readFile, stat, utimes, writeFile }
  from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { InvalidInputError } from '../functions/lib/errors.js';
import { LocalDigestStore } from '../functions/lib/store/local-digest-store.js';
import { fileNameFor } from '../functions/lib/store/local-files.js';
import { LocalRunStore } from '../functions/lib/store/local-run-store.js';
import type { ImageResult, StoreLogger } from '../functions/lib/store/types.js';
import { makeTempDir, removeDir, runCommand } from './harness/process.js';

const REGISTRY = 'registry.example.com:5000';
const TSX = resolve('node_modules/.bin/tsx');
const DAY_MS = 24 * 60 * 60 * 1000;

function digest(label: string): string {
  return `sha256:${Buffer.from(label).toString('hex').padEnd(64, '0')
    .slice(0, 64)}`;
}

function result(pkg: string, label: string): ImageResult {
  return {
    package: pkg, digest: digest(label), tags: [label], status: 'copied',
    blobs: { uploaded: 1, mounted: 0, skipped: 0, foreign: 0 },
    bytesUploaded: 10, durationMs: 1,
  };
}

/** A logger that keeps what it was told. */
function recordingLogger(): StoreLogger & { warnings: string[] } {
  const warnings: string[] = [];
  return {
    warnings,
    debug: () => undefined,
    warn: (message) => warnings.push(message),
  };
}

// A writer in a process of its own: it opens a store for every image, as
// separate CLI runs would, so that each open may compact the log while
// the other writers append to it.
const WRITER = `
(async () => {
  const env = process.env;
  const { LocalDigestStore } = await import(env.DIGEST_MODULE);
  const { LocalRunStore } = await import(env.RUN_MODULE);
  const digest = (label) => 'sha256:' +
    Buffer.from(label).toString('hex').padEnd(64, '0').slice(0, 64);
  const runs = new LocalRunStore({ dir: env.STATE_DIR });

  for (let i = 0; i < Number(env.COUNT); i++) {
    const store = new LocalDigestStore({ dir: env.STATE_DIR,
      compactAfterBytes: Number(env.COMPACT_AFTER) });
    await store.remember(env.REGISTRY, env.WRITER + '/image-' + i,
      [digest(env.WRITER + '-' + i), digest('shared')]);
    await store.close();

    await runs.putResult('shared-run', {
      package: env.WRITER + '/image-' + i, digest: digest('x' + i),
      tags: ['latest'], status: 'copied',
      blobs: { uploaded: 1, mounted: 0, skipped: 0, foreign: 0 },
      bytesUploaded: 1, durationMs: 1 });
  }
})().catch((error) => { console.error(error); process.exit(1); });
`;

function runWriter(dir: string, writer: string, count: number):
  Promise<unknown> {
  return runCommand(TSX, ['-e', WRITER], {
    env: {
      ...process.env,
      DIGEST_MODULE: pathToFileURL(
        resolve('functions/lib/store/local-digest-store.ts')).href,
      RUN_MODULE: pathToFileURL(
        resolve('functions/lib/store/local-run-store.ts')).href,
      STATE_DIR: dir, REGISTRY, WRITER: writer, COUNT: String(count),
      COMPACT_AFTER: '2000',
    },
  });
}

describe('LocalDigestStore', () => {
  let dir: string;
  const stores: LocalDigestStore[] = [];
  const open = (options: Partial<ConstructorParameters<
    typeof LocalDigestStore>[0]> = {}) => {
    const store = new LocalDigestStore({ dir, ...options });
    stores.push(store);
    return store;
  };
  const registryDir = () => join(dir, 'digests', fileNameFor(REGISTRY));

  beforeEach(async () => {
    dir = await makeTempDir('local-digests');
  });

  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()));
    await removeDir(dir);
  });

  it('keeps every location when processes remember and compact at once', async () => {
    // Prepare
    const writers = ['alpha', 'beta', 'gamma'];
    const count = 60;

    // Act
    await Promise.all(writers.map((writer) =>
      runWriter(dir, writer, count)));

    // Assess
    const store = open();
    const repositories: string[] = [];
    for (const writer of writers) {
      for (let i = 0; i < count; i++) {
        const repository = `${writer}/image-${i}`;
        repositories.push(repository);
        expect(await store.locate(REGISTRY, digest(`${writer}-${i}`)))
          .toEqual([repository]);
      }
    }
    expect((await store.locate(REGISTRY, digest('shared'))).sort())
      .toEqual(repositories.sort());

    const results = await new LocalRunStore({ dir }).listResults('shared-run');
    expect(results.map((one) => one.package).sort())
      .toEqual(repositories.sort());
  });

  it('sees what another store remembered once it writes itself', async () => {
    // Prepare
    const first = open();
    const second = open();
    await first.locate(REGISTRY, digest('any'));
    await second.remember(REGISTRY, 'from-second', [digest('x')]);

    // Act
    await first.remember(REGISTRY, 'from-first', [digest('y')]);

    // Assess
    expect(await first.locate(REGISTRY, digest('x')))
      .toEqual(['from-second']);
    expect(await first.locate(REGISTRY, digest('y')))
      .toEqual(['from-first']);
  });

  it('folds a large log into a snapshot that says the same', async () => {
    // Prepare
    let time = Date.UTC(2024, 0, 1);
    const writer = open({ now: () => time });
    for (let i = 0; i < 50; i++) {
      time += 1000;
      await writer.remember(REGISTRY, `repo-${i % 5}`,
        [digest(`blob-${i}`), digest('base')]);
    }
    await writer.forget(REGISTRY, 'repo-2', digest('base'));
    await writer.forget(REGISTRY, 'repo-0', digest('blob-0'));

    // Act
    const reader = open({ compactAfterBytes: 1000 });
    const located = await reader.locate(REGISTRY, digest('base'));

    // Assess
    const files = await readdir(registryDir());
    expect(files.sort()).toEqual(['snapshot.json']);
    expect(located).toEqual(['repo-4', 'repo-3', 'repo-1', 'repo-0']);
    expect(await reader.locate(REGISTRY, digest('blob-0'))).toEqual([]);
    expect(await reader.locate(REGISTRY, digest('blob-7')))
      .toEqual(['repo-2']);
  });

  it('keeps writing after a compaction moved the log it had open', async () => {
    // Prepare
    const writer = open();
    await writer.remember(REGISTRY, 'before', [digest('a')]);
    const compactor = open({ compactAfterBytes: 1 });
    await compactor.locate(REGISTRY, digest('a'));

    // Act
    await writer.remember(REGISTRY, 'after', [digest('b')]);

    // Assess
    expect(await writer.locate(REGISTRY, digest('a'))).toEqual(['before']);
    expect(await writer.locate(REGISTRY, digest('b'))).toEqual(['after']);
    const reader = open();
    expect(await reader.locate(REGISTRY, digest('b'))).toEqual(['after']);
  });

  it('reads the log a compaction left behind when it died', async () => {
    // Prepare
    await mkdir(registryDir(), { recursive: true });
    const record = { op: '+', repository: 'orphan', digests: [digest('o')],
      at: 1 };
    await writeFile(join(registryDir(), 'log.1-1-ab.compacting'),
      `${JSON.stringify(record)}\n`);

    // Act
    const store = open();
    const located = await store.locate(REGISTRY, digest('o'));

    // Assess: read, and folded into the snapshot
    expect(located).toEqual(['orphan']);
    expect(await readdir(registryDir())).toEqual(['snapshot.json']);
  });

  it('leaves compaction to the process holding the lock, and breaks a lock left for ten minutes', async () => {
    // Prepare
    const writer = open();
    await writer.remember(REGISTRY, 'app', [digest('a')]);
    const lock = join(registryDir(), 'compact.lock');
    await writeFile(lock, '1\n');

    // Act: a fresh lock stops compaction, an old one does not
    const whileLocked = open({ compactAfterBytes: 1 });
    const lockedView = await whileLocked.locate(REGISTRY, digest('a'));
    const filesWhileLocked = (await readdir(registryDir())).sort();

    const old = (Date.now() - 11 * 60 * 1000) / 1000;
    await utimes(lock, old, old);
    const afterStale = open({ compactAfterBytes: 1 });
    const staleView = await afterStale.locate(REGISTRY, digest('a'));

    // Assess
    expect(lockedView).toEqual(['app']);
    expect(filesWhileLocked).toEqual(['compact.lock', 'log.jsonl']);
    expect(staleView).toEqual(['app']);
    expect(await readdir(registryDir())).toEqual(['snapshot.json']);
  });

  it('skips a line torn by a writer that died, and loses no later line', async () => {
    // Prepare
    const writer = open();
    await writer.remember(REGISTRY, 'first', [digest('a')]);
    await appendFile(join(registryDir(), 'log.jsonl'),
      '{"op":"+","repository":"torn","dig');

    // Act
    const next = open();
    await next.remember(REGISTRY, 'second', [digest('b')]);

    // Assess
    const logger = recordingLogger();
    const reader = open({ logger });
    expect(await reader.locate(REGISTRY, digest('a'))).toEqual(['first']);
    expect(await reader.locate(REGISTRY, digest('b'))).toEqual(['second']);
    expect(logger.warnings)
      .toEqual(['skipped an unreadable blob location record']);
  });

  it('carries on without an unreadable snapshot, saying so', async () => {
    // Prepare
    await mkdir(registryDir(), { recursive: true });
    await writeFile(join(registryDir(), 'snapshot.json'), '{"format": 1, "loc');
    const logger = recordingLogger();

    // Act
    const store = open({ logger });
    await store.remember(REGISTRY, 'app', [digest('a')]);

    // Assess
    expect(await store.locate(REGISTRY, digest('a'))).toEqual(['app']);
    expect(logger.warnings)
      .toContain('ignored an unreadable blob location snapshot');
  });

  it('keeps registries with long or odd names apart', async () => {
    // Prepare
    const store = open();
    const long = `${'a'.repeat(300)}.example.com`;
    const names = [long, `${long}x`, '..', '.', 'host/with/slashes'];

    // Act
    for (const name of names) {
      await store.remember(name, `repo-of-${name.length}-${name.at(-1)}`,
        [digest('same')]);
    }

    // Assess
    const reader = open();
    for (const name of names) {
      expect(await reader.locate(name, digest('same')))
        .toEqual([`repo-of-${name.length}-${name.at(-1)}`]);
    }
    expect(await readdir(join(dir, 'digests'))).toHaveLength(names.length);
  });

  it('says which path it cannot use when the state directory is a file', async () => {
    // Prepare
    const file = join(dir, 'not-a-dir');
    await writeFile(file, 'x');
    const store = open({ dir: file });

    // Act
    const remembering = store.remember(REGISTRY, 'app', [digest('a')]);

    // Assess
    await expect(remembering).rejects.toBeInstanceOf(InvalidInputError);
    await expect(remembering).rejects.toThrow(file);
    await expect(remembering).rejects.toMatchObject({
      hint: expect.stringContaining('--state') });
  });
});

describe('LocalRunStore', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await makeTempDir('local-runs');
  });

  afterEach(async () => {
    await removeDir(dir);
  });

  it('deletes runs not written for the retention period when it first writes', async () => {
    // Prepare
    const start = Date.UTC(2024, 0, 1);
    await new LocalRunStore({ dir, now: () => start })
      .putRunInfo('old', { n: 1 });
    await new LocalRunStore({ dir, now: () => start + 20 * DAY_MS })
      .putResult('recent', result('app', 'a'));

    // Act
    const later = new LocalRunStore({ dir, now: () => start + 31 * DAY_MS });
    await later.putPlanPage('new', 0, []);

    // Assess
    expect(await later.getRunInfo('old')).toBeUndefined();
    expect(await later.listResults('recent')).toEqual([result('app', 'a')]);
    expect((await readdir(join(dir, 'runs'))).sort())
      .toEqual(['new', 'recent']);
  });

  it('marks a run as written by every write, so an active run is kept', async () => {
    // Prepare
    const start = Date.UTC(2024, 0, 1);
    await new LocalRunStore({ dir, now: () => start })
      .putPlanPage('long', 0, []);
    await new LocalRunStore({ dir, now: () => start + 25 * DAY_MS })
      .putResult('long', result('app', 'a'));

    // Act
    const later = new LocalRunStore({ dir, now: () => start + 40 * DAY_MS });
    const removed = await later.pruneExpiredRuns();

    // Assess
    expect(removed).toBe(0);
    expect((await stat(join(dir, 'runs', 'long'))).mtimeMs)
      .toBe(start + 25 * DAY_MS);
  });

  it('skips a result line torn by a writer that died', async () => {
    // Prepare
    const store = new LocalRunStore({ dir });
    await store.putResult('run', result('app', 'a'));
    await appendFile(join(dir, 'runs', 'run', 'results.jsonl'),
      '{"package":"torn","dig');
    await store.putResult('run', result('app', 'b'));

    // Act
    const listed = await store.listResults('run');

    // Assess
    expect(listed).toEqual([result('app', 'a'), result('app', 'b')]);
  });

  it('writes whole files a reader never sees half written', async () => {
    // Prepare
    const store = new LocalRunStore({ dir });
    const big = { gone: Array.from({ length: 5000 }, (_, i) => `tag-${i}`) };

    // Act: readers race a writer replacing the file
    const reads: Promise<unknown>[] = [];
    await store.putRunInfo('run', { gone: [] });
    const writes = Array.from({ length: 20 }, (_, i) =>
      store.putRunInfo('run', i % 2 ? big : { gone: [] }));
    for (let i = 0; i < 50; i++) reads.push(store.getRunInfo('run'));
    await Promise.all(writes);

    // Assess
    for (const read of await Promise.all(reads)) {
      expect([{ gone: [] }, big]).toContainEqual(read);
    }
    expect(await readdir(join(dir, 'runs', 'run'))).toEqual(['info.json']);
    expect([{ gone: [] }, big]).toContainEqual(JSON.parse(
      await readFile(join(dir, 'runs', 'run', 'info.json'), 'utf8')));
  });
});
