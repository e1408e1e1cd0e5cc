// The few table operations the DynamoDB stores need, with what DynamoDB
// leaves to its callers done once here: following query pages, batching
// writes by 25 and retrying the ones a batch left unprocessed, and turning
// SDK errors into the project's error families.

import {
  BatchWriteItemCommand, DeleteItemCommand, PutItemCommand,
  QueryCommand, type AttributeValue, type DynamoDBClient, type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import {
  AuthenticationError, InvalidInputError, TransientError,
} from '../errors.js';
import { tableSchema } from './dynamodb-schema.js';
import type { StoreLogger } from './types.js';

export type Item = Record<string, AttributeValue>;

export interface QueryOptions {
  /** Only items whose sort key starts with this. */
  prefix?: string;
  /** Attributes to return besides the keys. Default: all. */
  attributes?: readonly string[];
  /** Read what the latest writes wrote. Default true. */
  consistent?: boolean;
}

// BatchWriteItem takes at most 25 requests; a few batches in flight keep a
// large write quick without provoking throttling
const BATCH_SIZE = 25;
const BATCHES_IN_FLIGHT = 4;
const BATCH_ATTEMPTS = 8;

const { partitionKey: PK, sortKey: SK } = tableSchema;

export class Table {
  readonly #client: DynamoDBClient;
  readonly #name: string;
  readonly #logger?: StoreLogger;

  constructor(client: DynamoDBClient, name: string, logger?: StoreLogger) {
    if (!name) {
      throw new InvalidInputError('the DynamoDB table name is empty',
        { hint: 'pass the name of the table the stack created' });
    }
    this.#client = client;
    this.#name = name;
    this.#logger = logger;
  }

  get name(): string {
    return this.#name;
  }

  async put(item: Item): Promise<void> {
    try {
      await this.#client.send(new PutItemCommand({
        TableName: this.#name, Item: item }));
    } catch (error) {
      throw this.#error(error, 'PutItem');
    }
  }

  async delete(pk: string, sk: string): Promise<void> {
    try {
      await this.#client.send(new DeleteItemCommand({
        TableName: this.#name, Key: key(pk, sk) }));
    } catch (error) {
      throw this.#error(error, 'DeleteItem');
    }
  }

  /** Every item of a partition (or of a sort key prefix), in key order. */
  async query(pk: string, options: QueryOptions = {}): Promise<Item[]> {
    const names: Record<string, string> = { '#pk': PK, '#sk': SK };
    const values: Item = { ':pk': { S: pk } };
    let condition = '#pk = :pk';
    if (options.prefix) {
      condition += ' AND begins_with(#sk, :prefix)';
      values[':prefix'] = { S: options.prefix };
    }

    let projection: string | undefined;
    if (options.attributes) {
      const wanted = ['#pk', '#sk'];
      options.attributes.forEach((attribute, i) => {
        names[`#a${i}`] = attribute;
        wanted.push(`#a${i}`);
      });
      projection = wanted.join(', ');
    }

    const items: Item[] = [];
    let start: Item | undefined;
    do {
      try {
        const output = await this.#client.send(new QueryCommand({
          TableName: this.#name,
          KeyConditionExpression: condition,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ProjectionExpression: projection,
          ConsistentRead: options.consistent ?? true,
          ExclusiveStartKey: start,
        }));
        items.push(...(output.Items ?? []));
        start = output.LastEvaluatedKey;
      } catch (error) {
        throw this.#error(error, 'Query');
      }
    } while (start);
    return items;
  }

  /** Puts and deletes, 25 to a batch, until DynamoDB has done them all. */
  async writeAll(requests: readonly WriteRequest[]): Promise<void> {
    const batches: WriteRequest[][] = [];
    for (let i = 0; i < requests.length; i += BATCH_SIZE) {
      batches.push(requests.slice(i, i + BATCH_SIZE));
    }

    let next = 0;
    const worker = async () => {
      while (next < batches.length) {
        const batch = batches[next++];
        if (batch) await this.#writeBatch(batch);
      }
    };
    await Promise.all(Array.from(
      { length: Math.min(BATCHES_IN_FLIGHT, batches.length) }, worker));
  }

  async #writeBatch(batch: WriteRequest[]): Promise<void> {
    let pending = batch;

    for (let attempt = 1; ; attempt++) {
      let output;
      try {
        output = await this.#client.send(new BatchWriteItemCommand({
          RequestItems: { [this.#name]: pending } }));
      } catch (error) {
        throw this.#error(error, 'BatchWriteItem');
      }

      pending = output.UnprocessedItems?.[this.#name] ?? [];
      if (pending.length === 0) return;
      if (attempt === BATCH_ATTEMPTS) break;

      // unprocessed items mean the table is busy: back off, with jitter
      const delay = Math.min(2_000, 50 * 2 ** attempt) *
        (0.5 + Math.random() / 2);
      this.#logger?.debug('retrying unprocessed DynamoDB writes', {
        table: this.#name, unprocessed: pending.length, attempt,
        ms: Math.round(delay) });
      await new Promise((resolve) => setTimeout(resolve, delay));
    }

    throw new TransientError(
      `DynamoDB left ${pending.length} writes to table ${this.#name} ` +
      `unprocessed after ${BATCH_ATTEMPTS} attempts`,
      { hint: 'the table is throttled; the run can be retried' });
  }

  #error(error: unknown, action: string): Error {
    return dynamoError(error, action, this.#name);
  }
}

export function key(pk: string, sk: string): Item {
  return { [PK]: { S: pk }, [SK]: { S: sk } };
}

const AUTH_ERRORS = new Set([
  'AccessDeniedException', 'UnrecognizedClientException',
  'InvalidSignatureException', 'ExpiredTokenException',
  'MissingAuthenticationTokenException', 'CredentialsProviderError',
]);

const TRANSIENT_ERRORS = new Set([
  'ProvisionedThroughputExceededException', 'ThrottlingException',
  'RequestLimitExceeded', 'InternalServerError', 'ServiceUnavailable',
  'LimitExceededException', 'TimeoutError', 'RequestTimeout',
]);

const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND',
  'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH',
]);

/** An SDK error as one of the project's error families. */
export function dynamoError(error: unknown, action: string, table: string):
  Error {
  const failure = error as {
    name?: string; code?: string; message?: string;
    $metadata?: { httpStatusCode?: number };
  };
  const name = failure?.name ?? 'Error';
  const status = failure?.$metadata?.httpStatusCode;
  const message = `DynamoDB ${action} on table ${table} failed: ` +
    `${name}: ${failure?.message ?? String(error)}`;

  if (name === 'ResourceNotFoundException') {
    return new InvalidInputError(message, { status, cause: error,
      hint: `check that table ${table} exists in this account and region` });
  }
  if (AUTH_ERRORS.has(name)) {
    return new AuthenticationError(message, { status, cause: error,
      hint: `give the role dynamodb access to table ${table}` });
  }
  if (TRANSIENT_ERRORS.has(name) || (status !== undefined && status >= 500) ||
    NETWORK_CODES.has(failure?.code ?? '')) {
    return new TransientError(message, { status, cause: error });
  }
  if (name === 'ValidationException') {
    return new InvalidInputError(message, { status, cause: error });
  }
  return error instanceof Error ? error : new Error(message);
}
