// Where blobs went, kept in DynamoDB: one item per location, under
// pk `BLOB#REGISTRY#DIGEST` and sk `REPOSITORY`, with `at` the epoch ms it
// was last remembered. A lookup is one Query of one partition.

import type { DynamoDBClient, WriteRequest } from '@aws-sdk/client-dynamodb';
import { tableSchema } from './dynamodb-schema.js';
import { key, Table } from './dynamodb-table.js';
import { checkDays, newestFirst, strictClock } from './records.js';
import type { DigestStore, StoreLogger } from './types.js';

export interface DynamoDbDigestStoreOptions {
  client: DynamoDBClient;
  /** The table created from `tableSchema`. */
  tableName: string;
  /**
   * Days a location lives after it was last remembered. Default: forever;
   * a location that is gone costs one refused mount, then is forgotten.
   */
  locationTtlDays?: number;
  /** The clock, in epoch ms. Default `Date.now`. */
  now?: () => number;
  logger?: StoreLogger;
}

const { sortKey: SK, timeToLiveAttribute: TTL } = tableSchema;

export class DynamoDbDigestStore implements DigestStore {
  readonly #table: Table;
  readonly #ttlSeconds?: number;
  readonly #clock: () => number;

  constructor(options: DynamoDbDigestStoreOptions) {
    const days = options.locationTtlDays;
    if (days !== undefined) checkDays('locationTtlDays', days);

    this.#table = new Table(options.client, options.tableName,
      options.logger);
    this.#ttlSeconds = days === undefined ? undefined : days * 86_400;
    this.#clock = strictClock(options.now ?? Date.now);
  }

  async locate(registry: string, digest: string): Promise<string[]> {
    // a location is a hint checked by the mount itself: a read that lags
    // the latest write by a moment costs nothing
    const items = await this.#table.query(partition(registry, digest),
      { attributes: ['at'], consistent: false });

    return newestFirst(items.map((item) =>
      [item[SK]?.S ?? '', Number(item.at?.N ?? 0)] as const));
  }

  async remember(registry: string, repository: string,
    digests: readonly string[]): Promise<void> {
    // a batch may not name one key twice
    const unique = [...new Set(digests)];
    if (unique.length === 0) return;

    const at = this.#clock();
    const requests: WriteRequest[] = unique.map((digest) => ({
      PutRequest: { Item: {
        ...key(partition(registry, digest), repository),
        at: { N: String(at) },
        ...(this.#ttlSeconds === undefined ? {} : {
          [TTL]: { N: String(Math.floor(at / 1000) + this.#ttlSeconds) } }),
      } },
    }));
    await this.#table.writeAll(requests);
  }

  async forget(registry: string, repository: string, digest: string):
    Promise<void> {
    await this.#table.delete(partition(registry, digest), repository);
  }
}

function partition(registry: string, digest: string): string {
  return `BLOB#${registry}#${digest}`;
}
