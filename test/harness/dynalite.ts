// A DynamoDB-API server for tests: dynalite, in memory, in this process,
// on a free loopback port, with the stores' table already created.
//
// dynalite implements neither TransactWriteItems nor UpdateTimeToLive: the
// stores use neither, and the table's TTL setting is the stack's business.

import { createRequire } from 'node:module';
import type { Server } from 'node:http';
import {
  CreateTableCommand, DescribeTableCommand, DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { tableSchema } from '../../functions/lib/store/dynamodb-schema.js';
import { listenOnLoopback, onStopAll, stopOnce } from './process.js';

export interface Dynalite {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  /** A client for the server, with fake credentials. */
  client: DynamoDBClient;
  /** The table created from `tableSchema`. */
  tableName: string;
  /** Creates another empty table with the same schema. */
  createTable(name: string): Promise<void>;
  stop(): Promise<void>;
}

export interface DynaliteOptions {
  /** Default `backup-test`. */
  tableName?: string;
  /** The item size limit dynalite enforces, in KB. Default 400 (DynamoDB's). */
  maxItemSizeKb?: number;
}

type DynaliteFactory = (options: Record<string, unknown>) => Server;

/** Starts dynalite and creates the table; `stop` (or `stopAll`) ends it. */
export async function startDynalite(options: DynaliteOptions = {}):
  Promise<Dynalite> {
  const server = loadDynalite()({
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
    maxItemSizeKb: options.maxItemSizeKb ?? 400,
  });

  const port = await listenOnLoopback(server);
  const endpoint = `http://127.0.0.1:${port}`;

  const client = new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });

  const stop = stopOnce(async () => {
    unregister();
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const unregister = onStopAll(stop);

  const createTable = (name: string) => createStoreTable(client, name);
  const tableName = options.tableName ?? 'backup-test';
  try {
    await createTable(tableName);
  } catch (error) {
    await stop();
    throw error;
  }

  return { endpoint, client, tableName, createTable, stop };
}

async function createStoreTable(client: DynamoDBClient, name: string):
  Promise<void> {
  const { partitionKey, sortKey, keyType } = tableSchema;
  await client.send(new CreateTableCommand({
    TableName: name,
    BillingMode: tableSchema.billingMode,
    AttributeDefinitions: [
      { AttributeName: partitionKey, AttributeType: keyType },
      { AttributeName: sortKey, AttributeType: keyType },
    ],
    KeySchema: [
      { AttributeName: partitionKey, KeyType: 'HASH' },
      { AttributeName: sortKey, KeyType: 'RANGE' },
    ],
  }));

  // with createTableMs 0 the table turns ACTIVE on the next tick
  for (;;) {
    const { Table } = await client.send(
      new DescribeTableCommand({ TableName: name }));
    if (Table?.TableStatus === 'ACTIVE') return;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function loadDynalite(): DynaliteFactory {
  const require = createRequire(import.meta.url);
  try {
    return require('dynalite') as DynaliteFactory;
  } catch (error) {
    throw new Error(
      'the dynalite package the DynamoDB tests need is not installed.\n' +
      'Install the dev dependencies with: npm ci', { cause: error });
  }
}
