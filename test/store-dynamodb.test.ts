// What only the DynamoDB stores have to get right: the item layout the
// stack's table and TTL expect, DynamoDB's item and response size limits,
// unprocessed batch writes, and errors that say what to fix.

import {
  BatchWriteItemCommand, DynamoDBClient, PutItemCommand, ScanCommand,
  type AttributeValue,
} from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it }
  from 'vitest';

import {
  InvalidInputError, TransientError,
} from '../functions/lib/errors.js';
import { DynamoDbDigestStore }
  from '../functions/lib/store/dynamodb-digest-store.js';
import { DynamoDbRunStore } from '../functions/lib/store/dynamodb-run-store.js';
import { tableSchema } from '../functions/lib/store/dynamodb-schema.js';
import type { ImageResult, PlannedImage }
  from '../functions/lib/store/types.js';
import { startDynalite, type Dynalite } from './harness/dynalite.js';
import { freePort, stopAll } from './harness/process.js';

type Item = Record<string, AttributeValue>;

const NOW = Date.UTC(2024, 5, 1, 12, 0, 0);
const DAY_S = 86_400;

let dynalite: Dynalite;
let tableName: string;
let tables = 0;

beforeAll(async () => {
  dynalite = await startDynalite();
});

afterAll(stopAll);

beforeEach(async () => {
  tableName = `dynamodb-${++tables}`;
  await dynalite.createTable(tableName);
});

/** Every item of the table, read behind the stores' back. */
async function scan(): Promise<Item[]> {
  const items: Item[] = [];
  let start: Item | undefined;
  do {
    const page = await dynalite.client.send(new ScanCommand({
      TableName: tableName, ExclusiveStartKey: start }));
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  return items;
}

/** A client that records the commands it sends, and may tamper with them. */
function recordingClient(
  tamper?: (command: object) => Promise<unknown> | undefined,
): { client: DynamoDBClient; sent: string[] } {
  const sent: string[] = [];
  const client = {
    send(command: object) {
      sent.push(command.constructor.name);
      return tamper?.(command) ?? dynalite.client.send(
        command as Parameters<DynamoDBClient['send']>[0]);
    },
  } as unknown as DynamoDBClient;
  return { client, sent };
}

// names and tags that hardly compress, from a seed printed for replay
const SEED = Number(process.env.STORE_TEST_SEED ?? 20_240_601);
console.log(`DynamoDB store tests: seed ${SEED}`);
let state = SEED >>> 0;

function randomText(length: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Array.from({ length },
    () => alphabet[Math.floor(next() * alphabet.length)]).join('');
}

function images(count: number): PlannedImage[] {
  return Array.from({ length: count }, (_, i) => ({
    package: `package-${i}-${randomText(40)}`,
    sourceRepository: `org/package-${i}`,
    targetRepository: `backup/package-${i}`,
    digest: `sha256:${randomText(64)}`,
    tags: [randomText(128), randomText(128), randomText(128)],
  }));
}

function result(pkg: string, message = ''): ImageResult {
  return {
    package: pkg, digest: `sha256:${'a'.repeat(64)}`, tags: ['latest'],
    status: message ? 'failed' : 'copied',
    ...(message ? { error: { name: 'TransientError', message } } : {}),
    blobs: { uploaded: 1, mounted: 0, skipped: 0, foreign: 0 },
    bytesUploaded: 1, durationMs: 1,
  };
}

function itemBytes(item: Item): number {
  return Object.entries(item).reduce((sum, [name, value]) => sum +
    name.length + (value.S?.length ?? value.N?.length ?? 0) +
    (value.B?.length ?? 0), 0);
}

describe('DynamoDbDigestStore', () => {
  it('keeps a location as one item under the registry and digest, without expiry', async () => {
    // Prepare
    const store = new DynamoDbDigestStore({ client: dynalite.client,
      tableName, now: () => NOW });

    // Act
    await store.remember('registry.example.com', 'team/app',
      ['sha256:aa', 'sha256:bb']);

    // Assess
    const items = await scan();
    expect(items).toHaveLength(2);
    expect(items).toContainEqual({
      [tableSchema.partitionKey]: { S: 'BLOB#registry.example.com#sha256:aa' },
      [tableSchema.sortKey]: { S: 'team/app' },
      at: { N: String(NOW) },
    });
  });

  it('lets locations expire when given a lifetime', async () => {
    // Prepare
    const store = new DynamoDbDigestStore({ client: dynalite.client,
      tableName, now: () => NOW, locationTtlDays: 365 });

    // Act
    await store.remember('registry.example.com', 'app', ['sha256:aa']);

    // Assess
    const [item] = await scan();
    expect(item?.[tableSchema.timeToLiveAttribute])
      .toEqual({ N: String(NOW / 1000 + 365 * DAY_S) });
  });

  it('remembers the blobs of an image with more than one batch of layers', async () => {
    // Prepare
    const store = new DynamoDbDigestStore({ client: dynalite.client,
      tableName });
    const digests = Array.from({ length: 60 }, (_, i) => `sha256:${i}`);

    // Act
    await store.remember('registry.example.com', 'app', digests);

    // Assess
    expect(await scan()).toHaveLength(60);
    for (const digest of digests) {
      expect(await store.locate('registry.example.com', digest))
        .toEqual(['app']);
    }
  });

  it('retries the writes a batch left unprocessed until all are done', async () => {
    // Prepare: the first batch write takes only half its requests
    let refused = false;
    const { client, sent } = recordingClient((command) => {
      if (!(command instanceof BatchWriteItemCommand) || refused) {
        return undefined;
      }
      refused = true;
      const requests = command.input.RequestItems?.[tableName] ?? [];
      const half = Math.ceil(requests.length / 2);
      return dynalite.client.send(new BatchWriteItemCommand({
        RequestItems: { [tableName]: requests.slice(0, half) } }))
        .then(() => ({ UnprocessedItems: {
          [tableName]: requests.slice(half) } }));
    });
    const store = new DynamoDbDigestStore({ client, tableName });
    const digests = Array.from({ length: 10 }, (_, i) => `sha256:${i}`);

    // Act
    await store.remember('registry.example.com', 'app', digests);

    // Assess
    expect(sent.filter((name) => name === 'BatchWriteItemCommand'))
      .toHaveLength(2);
    expect(await scan()).toHaveLength(10);
  });
});

describe('DynamoDbRunStore', () => {
  const runStore = (client = dynalite.client) =>
    new DynamoDbRunStore({ client, tableName, now: () => NOW });

  it('marks every item of a run to expire 30 days after it was written', async () => {
    // Prepare
    const store = runStore();

    // Act
    await store.putPlanPage('run-1', 0, images(2));
    await store.putResult('run-1', result('app'));
    await store.putRunInfo('run-1', { pages: 1 });
    await store.putInventory('target', new Map([['app', ['latest']]]));

    // Assess
    const items = await scan();
    const expiry = { N: String(NOW / 1000 + 30 * DAY_S) };
    const ttl = tableSchema.timeToLiveAttribute;
    const runItems = items.filter((item) =>
      item[tableSchema.partitionKey]?.S === 'RUN#run-1');
    expect(runItems.map((item) => item[tableSchema.sortKey]?.S).sort())
      .toEqual([`INFO#000`, 'PLAN#000000#000',
        `RESULT#app#sha256:${'a'.repeat(64)}`]);
    for (const item of runItems) expect(item[ttl]).toEqual(expiry);

    const inventoryItems = items.filter((item) =>
      item[tableSchema.partitionKey]?.S === 'INVENTORY#target');
    expect(inventoryItems).toHaveLength(1);
    expect(inventoryItems[0]?.[ttl]).toBeUndefined();
  });

  it('splits a large plan page over items that each stay under 400 KB', async () => {
    // Prepare: random names and tags hardly compress
    const store = runStore();
    const page = images(4000);

    // Act
    await store.putPlanPage('run-1', 1, page);

    // Assess
    const items = await scan();
    expect(items.length).toBeGreaterThan(1);
    for (const item of items) {
      expect(itemBytes(item)).toBeLessThan(400 * 1024);
    }
    expect(await store.getPlanPage('run-1', 1)).toEqual(page);
  });

  it('keeps a 500-image page in one item', async () => {
    // Prepare
    const store = runStore();

    // Act
    await store.putPlanPage('run-1', 0, images(500));

    // Assess
    expect(await scan()).toHaveLength(1);
  });

  it('reports a page whose chunks come from different writes as transient', async () => {
    // Prepare: a second chunk overwritten by some other write
    const store = runStore();
    await store.putPlanPage('run-1', 2, images(4000));
    await dynalite.client.send(new PutItemCommand({ TableName: tableName,
      Item: {
        [tableSchema.partitionKey]: { S: 'RUN#run-1' },
        [tableSchema.sortKey]: { S: 'PLAN#000002#001' },
        data: { B: Buffer.from('other') }, chunk: { N: '1' },
        chunks: { N: '2' }, writeId: { S: 'another-write' },
      } }));

    // Act
    const reading = store.getPlanPage('run-1', 2);

    // Assess
    await expect(reading).rejects.toBeInstanceOf(TransientError);
    await expect(reading).rejects.toThrow(/PLAN#000002 changed/);
  });

  it('follows Query pages to list more than a megabyte of results', async () => {
    // Prepare
    const writer = runStore();
    const results = Array.from({ length: 600 }, (_, i) =>
      result(`package-${String(i).padStart(4, '0')}`, randomText(2500)));
    for (let i = 0; i < results.length; i += 50) {
      await Promise.all(results.slice(i, i + 50)
        .map((one) => writer.putResult('run-1', one)));
    }
    const { client, sent } = recordingClient();

    // Act
    const listed = await runStore(client).listResults('run-1');

    // Assess
    expect(listed).toEqual(results);
    expect(sent.filter((name) => name === 'QueryCommand').length)
      .toBeGreaterThan(1);
  });

  it('keeps one item per package of an inventory, more for a huge one', async () => {
    // Prepare
    const store = runStore();
    const inventory = new Map(Array.from({ length: 1500 }, (_, i) =>
      [`package-${i}`, ['latest', `v${i}`]]));
    inventory.set('nightly', Array.from({ length: 100_000 },
      () => `nightly-${randomText(16)}`));

    // Act
    await store.putInventory('target', inventory);

    // Assess
    const keys = (await scan()).map((item) =>
      item[tableSchema.sortKey]?.S ?? '');
    const nightly = keys.filter((key) => key.startsWith('PACKAGE#nightly#'));
    expect(keys.length - nightly.length).toBe(1500);
    expect(nightly.length).toBeGreaterThan(1);
    expect(await store.getInventory('target')).toEqual(inventory);
  });

  it('rewrites only the packages whose tags changed', async () => {
    // Prepare
    const inventory = new Map(Array.from({ length: 100 }, (_, i) =>
      [`package-${i}`, ['latest']]));
    await runStore().putInventory('target', inventory);
    let puts = 0;
    const { client, sent } = recordingClient((command) => {
      if (command instanceof BatchWriteItemCommand) {
        puts += (command.input.RequestItems?.[tableName] ?? [])
          .filter((request) => request.PutRequest).length;
      }
      return undefined;
    });

    // Act
    inventory.set('package-7', ['latest', 'v2']);
    await runStore(client).putInventory('target', inventory);

    // Assess
    expect(puts).toBe(1);
    expect(sent).toContain('QueryCommand');
    expect(await runStore().getInventory('target')).toEqual(inventory);
  });

  it('names the table, and what to check, when the table does not exist', async () => {
    // Prepare
    const store = new DynamoDbRunStore({ client: dynalite.client,
      tableName: 'no-such-table' });

    // Act
    const reading = store.listResults('run-1');

    // Assess
    await expect(reading).rejects.toBeInstanceOf(InvalidInputError);
    await expect(reading).rejects.toThrow(/no-such-table/);
    await expect(reading).rejects.toMatchObject({
      hint: expect.stringContaining('exists') });
  });

  it('reports an unreachable DynamoDB as transient', async () => {
    // Prepare: a port nobody listens on
    const port = await freePort();
    const client = new DynamoDBClient({
      endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      maxAttempts: 1,
    });
    const store = new DynamoDbRunStore({ client, tableName });

    // Act
    const reading = store.getRunInfo('run-1');

    // Assess
    await expect(reading).rejects.toBeInstanceOf(TransientError);
    await expect(reading).rejects.toThrow(/DynamoDB Query on table/);
    client.destroy();
  });
});
