// Runs and inventories, kept in DynamoDB (see dynamodb-schema.ts for the
// keys). A run's items expire `runTtlDays` after they were written; an
// inventory stays, one record per package so that no item outgrows
// DynamoDB's 400 KB whatever the number of tags.

import type { DynamoDBClient, WriteRequest } from '@aws-sdk/client-dynamodb';
import { NotFoundError } from '../errors.js';
import {
  decodeBody, decodeChunks, encodeBody, encodeChunks, parseChunkKey,
} from './dynamodb-items.js';
import { tableSchema } from './dynamodb-schema.js';
import { key, Table, type Item } from './dynamodb-table.js';
import { checkDays, checkRunId, pageLabel, resultKey } from './records.js';
import type {
  ImageResult, PlannedImage, RunStore, StoreLogger,
} from './types.js';

export interface DynamoDbRunStoreOptions {
  client: DynamoDBClient;
  /** The table created from `tableSchema`. */
  tableName: string;
  /** Days a run's plan, results and info are kept. Default 30. */
  runTtlDays?: number;
  /** The clock, in epoch ms. Default `Date.now`. */
  now?: () => number;
  logger?: StoreLogger;
}

const { sortKey: SK, timeToLiveAttribute: TTL } = tableSchema;

const PACKAGE = 'PACKAGE#';

export class DynamoDbRunStore implements RunStore {
  readonly #table: Table;
  readonly #ttlSeconds: number;
  readonly #now: () => number;

  constructor(options: DynamoDbRunStoreOptions) {
    const days = options.runTtlDays ?? 30;
    checkDays('runTtlDays', days);

    this.#table = new Table(options.client, options.tableName,
      options.logger);
    this.#ttlSeconds = days * 86_400;
    this.#now = options.now ?? Date.now;
  }

  async putPlanPage(runId: string, page: number, images: PlannedImage[]):
    Promise<void> {
    await this.#putRunRecord(runId, `PLAN#${pageLabel(page)}`, images);
  }

  async getPlanPage(runId: string, page: number): Promise<PlannedImage[]> {
    const base = `PLAN#${pageLabel(page)}`;
    const items = await this.#table.query(runPartition(runId),
      { prefix: `${base}#` });

    const images = (await decodeChunks(items)).get(base);
    if (images === undefined) {
      throw new NotFoundError(
        `plan page ${page} of run ${runId} is not in table ${this.#table.name}`,
        { hint: 'the run expired, or its plan was never stored' });
    }
    return images as PlannedImage[];
  }

  async putResult(runId: string, result: ImageResult): Promise<void> {
    const what = `the result of ${result.package}@${result.digest}`;
    await this.#table.put({
      ...key(runPartition(runId), `RESULT#${resultKey(result)}`),
      ...await encodeBody(result, what),
      ...this.#expiry(),
    });
  }

  async listResults(runId: string): Promise<ImageResult[]> {
    const items = await this.#table.query(runPartition(runId),
      { prefix: 'RESULT#' });
    return Promise.all(items.map(
      async (item) => await decodeBody(item) as ImageResult));
  }

  async putRunInfo(runId: string, info: Record<string, unknown>):
    Promise<void> {
    // tags gone from the source can make run info large: chunk it too
    await this.#putRunRecord(runId, 'INFO', info);
  }

  async getRunInfo(runId: string):
    Promise<Record<string, unknown> | undefined> {
    const items = await this.#table.query(runPartition(runId),
      { prefix: 'INFO#' });
    const info = (await decodeChunks(items)).get('INFO');
    return info as Record<string, unknown> | undefined;
  }

  async getInventory(target: string): Promise<Map<string, string[]>> {
    const items = await this.#table.query(inventoryPartition(target),
      { prefix: PACKAGE });

    const inventory = new Map<string, string[]>();
    for (const [base, tags] of await decodeChunks(items)) {
      inventory.set(base.slice(PACKAGE.length), tags as string[]);
    }
    return inventory;
  }

  async putInventory(target: string, inventory: Map<string, string[]>):
    Promise<void> {
    const pk = inventoryPartition(target);

    // rewrite only the packages whose tags changed: a daily run usually
    // changes a few of hundreds
    const existingItems = await this.#table.query(pk, { prefix: PACKAGE });
    const existing = await decodeChunks(existingItems);

    const heads: Item[] = [];
    const rest: Item[] = [];
    const chunkCounts = new Map<string, number>();
    for (const [name, tags] of inventory) {
      const base = `${PACKAGE}${name}`;
      const before = existing.get(base);
      if (before !== undefined &&
        JSON.stringify(before) === JSON.stringify(tags)) {
        chunkCounts.set(base, -1);
        continue;
      }

      const record = await encodeChunks(pk, base, tags);
      heads.push(record.head);
      rest.push(...record.rest);
      chunkCounts.set(base, record.rest.length + 1);
    }

    // items of dropped packages, and chunks beyond a rewritten record's end
    const stale: WriteRequest[] = [];
    for (const item of existingItems) {
      const sk = item[SK]?.S ?? '';
      const { base, chunk } = parseChunkKey(sk);
      const count = chunkCounts.get(base);
      if (count === undefined || (count >= 0 && chunk >= count)) {
        stale.push({ DeleteRequest: { Key: key(pk, sk) } });
      }
    }

    await this.#table.writeAll(rest.map(put));
    await this.#table.writeAll(heads.map(put));
    await this.#table.writeAll(stale);
  }

  /** Writes a chunked record of a run: its chunks, then its head. */
  async #putRunRecord(runId: string, base: string, value: unknown):
    Promise<void> {
    const { head, rest } = await encodeChunks(runPartition(runId), base,
      value, this.#expiry());

    // chunks a longer earlier write left behind are ignored by readers
    // (the head says how many count) and expire with the run
    await this.#table.writeAll(rest.map(put));
    await this.#table.put(head);
  }

  #expiry(): Item {
    const expiresAt = Math.floor(this.#now() / 1000) + this.#ttlSeconds;
    return { [TTL]: { N: String(expiresAt) } };
  }
}

function put(item: Item): WriteRequest {
  return { PutRequest: { Item: item } };
}

function runPartition(runId: string): string {
  checkRunId(runId);
  return `RUN#${runId}`;
}

function inventoryPartition(target: string): string {
  return `INVENTORY#${target}`;
}
