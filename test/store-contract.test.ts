// One behavioural suite for every store implementation: the local files
// under a temporary state directory, and DynamoDB against dynalite. What
// the copy engine and the workflow rely on holds for both.

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it }
  from 'vitest';

import { InvalidInputError, NotFoundError } from '../functions/lib/errors.js';
import { DynamoDbDigestStore }
  from '../functions/lib/store/dynamodb-digest-store.js';
import { DynamoDbRunStore } from '../functions/lib/store/dynamodb-run-store.js';
import { LocalDigestStore } from '../functions/lib/store/local-digest-store.js';
import { LocalRunStore } from '../functions/lib/store/local-run-store.js';
import type {
  DigestStore, ImageResult, PlannedImage, RunStore,
} from '../functions/lib/store/types.js';
import { startDynalite, type Dynalite } from './harness/dynalite.js';
import { makeTempDir, removeDir, stopAll } from './harness/process.js';

/** A backend under test: fresh stores, and new stores over the same data. */
interface Backend {
  digests(): DigestStore;
  runs(): RunStore;
  /** Releases what `digests` and `runs` opened. */
  cleanup(): Promise<void>;
}

interface Implementation {
  name: string;
  setupAll?(): Promise<void>;
  create(clock: () => number): Promise<Backend>;
}

let dynalite: Dynalite | undefined;
let tables = 0;

const implementations: Implementation[] = [
  {
    name: 'the local stores',
    async create(clock) {
      const dir = await makeTempDir('store');
      const opened: LocalDigestStore[] = [];
      return {
        digests() {
          const store = new LocalDigestStore({ dir, now: clock });
          opened.push(store);
          return store;
        },
        runs: () => new LocalRunStore({ dir, now: clock }),
        async cleanup() {
          await Promise.all(opened.map((store) => store.close()));
          await removeDir(dir);
        },
      };
    },
  },
  {
    name: 'the DynamoDB stores',
    async setupAll() {
      dynalite = await startDynalite();
    },
    async create(clock) {
      if (!dynalite) throw new Error('dynalite did not start');
      const { client } = dynalite;

      // a fresh table per test, so no test sees another's items
      const tableName = `store-${++tables}`;
      await dynalite.createTable(tableName);
      return {
        digests: () => new DynamoDbDigestStore({ client, tableName,
          now: clock }),
        runs: () => new DynamoDbRunStore({ client, tableName, now: clock }),
        cleanup: async () => undefined,
      };
    },
  },
];

// deterministic "random" names and tags; the seed is printed so that a
// failure can be replayed with STORE_TEST_SEED
const SEED = Number(process.env.STORE_TEST_SEED ?? 20_240_601);
console.log(`store tests: seed ${SEED}`);

function randomSource(seed: number): (length: number) => string {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return (length) => Array.from({ length },
    () => alphabet[Math.floor(next() * alphabet.length)]).join('');
}

function digestOf(text: string): string {
  return `sha256:${text.padEnd(64, '0').slice(0, 64)}`;
}

function plannedImages(count: number, random: (n: number) => string,
  tagsEach = 3): PlannedImage[] {
  return Array.from({ length: count }, (_, i) => {
    // long names, slashes and the longest tags registries allow
    const name = `group-${random(20)}/sub-${random(30)}/package-${i}-` +
      random(40);
    return {
      package: name,
      sourceRepository: `my-org-${random(10)}/${name}`,
      targetRepository: `backups/ghcr/${name}`,
      digest: digestOf(random(64)),
      tags: Array.from({ length: tagsEach }, () => random(128)),
    };
  });
}

function result(pkg: string, digest: string,
  overrides: Partial<ImageResult> = {}): ImageResult {
  return {
    package: pkg,
    digest,
    tags: ['latest'],
    status: 'copied',
    blobs: { uploaded: 3, mounted: 1, skipped: 0, foreign: 0 },
    bytesUploaded: 1234,
    durationMs: 56,
    ...overrides,
  };
}

describe.each(implementations)('$name', (implementation) => {
  let backend: Backend;
  let time: number;
  const clock = () => time;

  beforeAll(async () => {
    await implementation.setupAll?.();
  });

  afterAll(stopAll);

  beforeEach(async () => {
    time = Date.UTC(2024, 5, 1);
    backend = await implementation.create(clock);
  });

  afterEach(async () => {
    await backend.cleanup();
  });

  describe('DigestStore', () => {
    const registry = 'registry.example.com';
    const blob = digestOf('b10b');

    it('finds no repository for a digest it was never told about', async () => {
      // Prepare
      const store = backend.digests();

      // Act
      const found = await store.locate(registry, blob);

      // Assess
      expect(found).toEqual([]);
    });

    it('lists the repositories holding a digest, most recently remembered first', async () => {
      // Prepare
      const store = backend.digests();
      await store.remember(registry, 'team/alpha', [blob]);
      time += 1000;
      await store.remember(registry, 'team/beta', [blob, digestOf('other')]);
      time += 1000;
      await store.remember(registry, 'gamma', [blob]);
      time += 1000;

      // Act: alpha is remembered again, which makes it the newest
      await store.remember(registry, 'team/alpha', [blob]);

      // Assess
      expect(await store.locate(registry, blob))
        .toEqual(['team/alpha', 'gamma', 'team/beta']);
      expect(await store.locate(registry, digestOf('other')))
        .toEqual(['team/beta']);
    });

    it('orders locations remembered within one millisecond by call order', async () => {
      // Prepare
      const store = backend.digests();

      // Act: the clock stands still
      await store.remember(registry, 'first', [blob]);
      await store.remember(registry, 'second', [blob]);
      await store.remember(registry, 'third', [blob]);

      // Assess
      expect(await store.locate(registry, blob))
        .toEqual(['third', 'second', 'first']);
    });

    it('keeps the locations of each target registry apart', async () => {
      // Prepare
      const store = backend.digests();

      // Act
      await store.remember('one.example.com', 'app', [blob]);
      await store.remember('two.example.com:5000', 'other-app', [blob]);

      // Assess
      expect(await store.locate('one.example.com', blob)).toEqual(['app']);
      expect(await store.locate('two.example.com:5000', blob))
        .toEqual(['other-app']);
      expect(await store.locate('three.example.com', blob)).toEqual([]);
    });

    it('forgets only the one location it is told to', async () => {
      // Prepare
      const store = backend.digests();
      const sibling = digestOf('5151');
      await store.remember(registry, 'app', [blob, sibling]);
      await store.remember(registry, 'other', [blob]);
      await store.remember('elsewhere.example.com', 'app', [blob]);

      // Act
      await store.forget(registry, 'app', blob);

      // Assess
      expect(await store.locate(registry, blob)).toEqual(['other']);
      expect(await store.locate(registry, sibling)).toEqual(['app']);
      expect(await store.locate('elsewhere.example.com', blob))
        .toEqual(['app']);
    });

    it('treats forgetting an unknown location and remembering no digest as no-ops', async () => {
      // Prepare
      const store = backend.digests();
      await store.remember(registry, 'app', [blob]);

      // Act
      await store.forget(registry, 'nowhere', blob);
      await store.forget(registry, 'app', digestOf('dead'));
      await store.remember(registry, 'empty', []);

      // Assess
      expect(await store.locate(registry, blob)).toEqual(['app']);
      expect(await store.locate(registry, digestOf('dead'))).toEqual([]);
    });

    it('counts a digest named twice in one remember once', async () => {
      // Prepare
      const store = backend.digests();

      // Act
      await store.remember(registry, 'app', [blob, blob, blob]);

      // Assess
      expect(await store.locate(registry, blob)).toEqual(['app']);
    });

    it('remembers locations and forgets them for a store opened later', async () => {
      // Prepare
      const writer = backend.digests();
      await writer.remember(registry, 'app', [blob, digestOf('kept')]);
      time += 1000;
      await writer.remember(registry, 'newer', [blob]);
      await writer.forget(registry, 'app', digestOf('kept'));

      // Act
      const reader = backend.digests();

      // Assess
      expect(await reader.locate(registry, blob)).toEqual(['newer', 'app']);
      expect(await reader.locate(registry, digestOf('kept'))).toEqual([]);
    });

    it('remembers the blobs of many images, each found where it went', async () => {
      // Prepare
      const store = backend.digests();
      const random = randomSource(SEED);
      const images = Array.from({ length: 100 }, (_, i) => ({
        repository: `package-${i}`,
        blobs: Array.from({ length: 8 }, () => digestOf(random(64))),
      }));
      const shared = digestOf('base');

      // Act
      await Promise.all(images.map((image) => store.remember(registry,
        image.repository, [shared, ...image.blobs])));

      // Assess
      const found = await Promise.all(images.map(async (image) =>
        Promise.all(image.blobs.map((digest) =>
          store.locate(registry, digest)))));
      expect(found).toEqual(images.map((image) =>
        image.blobs.map(() => [image.repository])));
      expect((await store.locate(registry, shared)).sort())
        .toEqual(images.map((image) => image.repository).sort());
    });
  });

  describe('RunStore plan pages', () => {
    it('returns a page of 500 images with long names as it was stored', async () => {
      // Prepare
      const store = backend.runs();
      const images = plannedImages(500, randomSource(SEED), 5);

      // Act
      await store.putPlanPage('run-1', 0, images);

      // Assess
      expect(await backend.runs().getPlanPage('run-1', 0)).toEqual(images);
    });

    it('keeps pages and runs apart', async () => {
      // Prepare
      const store = backend.runs();
      const random = randomSource(SEED + 1);
      const pages = [0, 1, 10, 100, 999_999];
      const planned = new Map(pages.map((page) =>
        [page, plannedImages(3, random)]));
      const other = plannedImages(2, random);

      // Act
      for (const [page, images] of planned) {
        await store.putPlanPage('run-1', page, images);
      }
      await store.putPlanPage('run-10', 1, other);

      // Assess
      for (const [page, images] of planned) {
        expect(await store.getPlanPage('run-1', page)).toEqual(images);
      }
      expect(await store.getPlanPage('run-10', 1)).toEqual(other);
    });

    it('replaces a page stored again, even by a much smaller one', async () => {
      // Prepare: a page large enough to take several items in DynamoDB
      const store = backend.runs();
      const random = randomSource(SEED + 2);
      await store.putPlanPage('run-1', 7, plannedImages(2500, random, 4));
      const smaller = plannedImages(2, random);

      // Act
      await store.putPlanPage('run-1', 7, smaller);

      // Assess
      expect(await store.getPlanPage('run-1', 7)).toEqual(smaller);
    });

    it('returns a very large page whole', async () => {
      // Prepare
      const store = backend.runs();
      const images = plannedImages(2500, randomSource(SEED + 3), 4);

      // Act
      await store.putPlanPage('run-1', 3, images);

      // Assess
      expect(await store.getPlanPage('run-1', 3)).toEqual(images);
    });

    it('stores an empty page', async () => {
      // Prepare
      const store = backend.runs();

      // Act
      await store.putPlanPage('run-1', 0, []);

      // Assess
      expect(await store.getPlanPage('run-1', 0)).toEqual([]);
    });

    it('says which page of which run is missing', async () => {
      // Prepare
      const store = backend.runs();
      await store.putPlanPage('run-1', 0, []);

      // Act
      const missing = store.getPlanPage('run-1', 1);

      // Assess
      await expect(missing).rejects.toBeInstanceOf(NotFoundError);
      await expect(missing).rejects.toThrow(/plan page 1 of run run-1/);
    });

    it('refuses page numbers that are not small non-negative integers', async () => {
      // Prepare
      const store = backend.runs();

      // Act and assess
      for (const page of [-1, 1.5, 1_000_000, Number.NaN]) {
        await expect(store.putPlanPage('run-1', page, []))
          .rejects.toBeInstanceOf(InvalidInputError);
      }
    });
  });

  describe('RunStore results', () => {
    it('keeps one result per image, the one stored last', async () => {
      // Prepare
      const store = backend.runs();
      const failed = result('app', digestOf('a'), { status: 'failed',
        error: { name: 'TransientError', message: 'registry answered 503' } });
      const retried = result('app', digestOf('a'), { status: 'copied' });
      const sibling = result('app', digestOf('b'), { status: 'up-to-date' });

      // Act
      await store.putResult('run-1', failed);
      await store.putResult('run-1', sibling);
      await store.putResult('run-1', retried);

      // Assess
      expect(await store.listResults('run-1')).toEqual([retried, sibling]);
    });

    it('lists every result of a run larger than a megabyte, by package and digest', async () => {
      // Prepare: 700 results of about 2 KB, more than one Query page
      const store = backend.runs();
      const random = randomSource(SEED + 4);
      const results = Array.from({ length: 700 }, (_, i) =>
        result(`org-${random(8)}/package-${i}`, digestOf(random(64)), {
          status: 'failed',
          error: { name: 'TransientError', message: random(2000) },
        }));

      // Act
      for (let i = 0; i < results.length; i += 25) {
        await Promise.all(results.slice(i, i + 25)
          .map((one) => store.putResult('run-big', one)));
      }

      // Assess
      const listed = await backend.runs().listResults('run-big');
      const byKey = (one: ImageResult) => `${one.package}#${one.digest}`;
      expect(listed).toHaveLength(700);
      expect(listed).toEqual([...results]
        .sort((a, b) => (byKey(a) < byKey(b) ? -1 : 1)));
    });

    it('keeps the results of each run apart', async () => {
      // Prepare
      const store = backend.runs();
      const first = result('app', digestOf('a'));
      const second = result('app', digestOf('a'), { status: 'up-to-date' });

      // Act
      await store.putResult('run-1', first);
      await store.putResult('run-2', second);

      // Assess
      expect(await store.listResults('run-1')).toEqual([first]);
      expect(await store.listResults('run-2')).toEqual([second]);
      expect(await store.listResults('run-3')).toEqual([]);
    });
  });

  describe('RunStore run info', () => {
    it('returns the info last stored for a run, and nothing for another', async () => {
      // Prepare
      const store = backend.runs();
      const info = { options: { org: 'my-org', dryRun: false }, pages: 12,
        gone: [{ package: 'old', tags: ['v1'] }] };

      // Act
      await store.putRunInfo('run-1', { pages: 1 });
      await store.putRunInfo('run-1', info);

      // Assess
      expect(await backend.runs().getRunInfo('run-1')).toEqual(info);
      expect(await store.getRunInfo('run-2')).toBeUndefined();
    });

    it('keeps large run info whole', async () => {
      // Prepare: tags gone from the source can be many
      const store = backend.runs();
      const random = randomSource(SEED + 5);
      const info = { gone: Array.from({ length: 3000 }, () =>
        ({ package: random(60), tags: [random(60), random(60)] })) };

      // Act
      await store.putRunInfo('run-1', info);

      // Assess
      expect(await store.getRunInfo('run-1')).toEqual(info);
    });
  });

  describe('RunStore inventory', () => {
    const target = 'backup.example.com/ghcr';

    it('returns an empty inventory for a target never written', async () => {
      // Prepare
      const store = backend.runs();

      // Act
      const inventory = await store.getInventory(target);

      // Assess
      expect(inventory).toEqual(new Map());
    });

    it('returns an inventory of thousands of packages as it was stored', async () => {
      // Prepare
      const store = backend.runs();
      const random = randomSource(SEED + 6);
      const inventory = new Map(Array.from({ length: 3000 }, (_, i) =>
        [`team-${i % 7}/package-${i}-${random(20)}`,
          Array.from({ length: 1 + (i % 20) }, () => `v${random(12)}`)]));

      // Act
      await store.putInventory(target, inventory);

      // Assess
      expect(await backend.runs().getInventory(target)).toEqual(inventory);
    });

    it('keeps a package with 50,000 tags whole', async () => {
      // Prepare
      const store = backend.runs();
      const random = randomSource(SEED + 7);
      const tags = Array.from({ length: 50_000 }, () => `sha-${random(12)}`);
      const inventory = new Map([['nightly', tags], ['small', ['latest']]]);

      // Act
      await store.putInventory(target, inventory);

      // Assess
      expect(await store.getInventory(target)).toEqual(inventory);
    });

    it('replaces the whole inventory: dropped packages go, changed tags change', async () => {
      // Prepare
      const store = backend.runs();
      const random = randomSource(SEED + 8);
      const big = Array.from({ length: 50_000 }, () => `sha-${random(12)}`);
      await store.putInventory(target, new Map([
        ['kept', ['v1', 'latest']], ['changed', ['v1']],
        ['dropped', ['v1']], ['shrunk', big],
      ]));
      const next = new Map([
        ['kept', ['v1', 'latest']], ['changed', ['v1', 'v2']],
        ['shrunk', ['latest']], ['added', []],
      ]);

      // Act
      await store.putInventory(target, next);

      // Assess
      expect(await backend.runs().getInventory(target)).toEqual(next);
    });

    it('keeps the inventories of each target apart', async () => {
      // Prepare
      const store = backend.runs();

      // Act
      await store.putInventory('one.example.com', new Map([['a', ['1']]]));
      await store.putInventory('one.example.com/path',
        new Map([['b', ['2']]]));

      // Assess
      expect(await store.getInventory('one.example.com'))
        .toEqual(new Map([['a', ['1']]]));
      expect(await store.getInventory('one.example.com/path'))
        .toEqual(new Map([['b', ['2']]]));
    });
  });
});
