// How values become DynamoDB items without meeting the 400 KB item limit.
//
// A value that is always small (a result, run info) is one item: JSON in a
// string attribute, or gzipped JSON when the JSON is large. A value that
// may be large (a plan page, a package's tags) is a record of one or more
// items: its gzipped JSON split into chunks of at most CHUNK_BYTES, under
// sort keys `BASE#000`, `BASE#001`... Chunk 0 says how many chunks the
// record has and which write made them; it is written last, so a reader
// never takes chunks of one write for another's.

import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import { InvalidInputError, TransientError } from '../errors.js';
import { tableSchema } from './dynamodb-schema.js';
import type { Item } from './dynamodb-table.js';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/** The most data in one item: 100 KB below the limit, for keys and names. */
export const CHUNK_BYTES = 300 * 1024;
/** Chunk numbers have three digits in sort keys. */
const MAX_CHUNKS = 1000;
/** JSON up to this size is stored readable; larger is gzipped. */
const PLAIN_JSON_BYTES = 64 * 1024;

const { sortKey: SK } = tableSchema;

/** The attributes holding a small value: `json`, or `gz` when large. */
export async function encodeBody(value: unknown, what: string):
  Promise<Item> {
  const json = JSON.stringify(value);
  if (Buffer.byteLength(json) <= PLAIN_JSON_BYTES) return { json: { S: json } };

  const packed = await gzipAsync(json);
  if (packed.length > CHUNK_BYTES) {
    throw new InvalidInputError(
      `${what} is ${packed.length} bytes even compressed, more than ` +
      `one DynamoDB item holds (${CHUNK_BYTES})`);
  }
  return { gz: { B: packed } };
}

export async function decodeBody(item: Item): Promise<unknown> {
  if (item.json?.S !== undefined) return JSON.parse(item.json.S);
  if (item.gz?.B !== undefined) {
    return JSON.parse((await gunzipAsync(item.gz.B)).toString('utf8'));
  }
  throw new InvalidInputError(
    `item ${item[SK]?.S ?? '?'} holds no value (json or gz attribute)`);
}

/** The items of a record: write `rest` first, then `head` to commit it. */
export interface ChunkedItems {
  head: Item;
  rest: Item[];
}

export async function encodeChunks(pk: string, base: string, value: unknown,
  extra: Item = {}): Promise<ChunkedItems> {
  const packed = await gzipAsync(JSON.stringify(value));
  const count = Math.max(1, Math.ceil(packed.length / CHUNK_BYTES));
  if (count > MAX_CHUNKS) {
    throw new InvalidInputError(
      `${base} is ${packed.length} bytes compressed, more than ` +
      `${MAX_CHUNKS} DynamoDB items hold; store it in smaller parts`);
  }

  const writeId = randomBytes(8).toString('hex');
  const items: Item[] = [];
  for (let chunk = 0; chunk < count; chunk++) {
    items.push({
      [tableSchema.partitionKey]: { S: pk },
      [SK]: { S: chunkKey(base, chunk) },
      data: { B: packed.subarray(chunk * CHUNK_BYTES,
        (chunk + 1) * CHUNK_BYTES) },
      chunk: { N: String(chunk) },
      chunks: { N: String(count) },
      writeId: { S: writeId },
      ...extra,
    });
  }
  const [head, ...rest] = items as [Item, ...Item[]];
  return { head, rest };
}

export function chunkKey(base: string, chunk: number): string {
  return `${base}#${String(chunk).padStart(3, '0')}`;
}

/** `BASE#012` -> base and chunk number. */
export function parseChunkKey(sk: string): { base: string; chunk: number } {
  const cut = sk.lastIndexOf('#');
  return { base: sk.slice(0, cut), chunk: Number(sk.slice(cut + 1)) };
}

/**
 * Reassembles the records among `items` (the items of one partition or
 * prefix), keyed by base. A record whose chunks disagree was rewritten
 * while being read: that is worth a retry.
 */
export async function decodeChunks(items: readonly Item[]):
  Promise<Map<string, unknown>> {
  const groups = new Map<string, Map<number, Item>>();
  for (const item of items) {
    const { base, chunk } = parseChunkKey(item[SK]?.S ?? '');
    let group = groups.get(base);
    if (!group) {
      group = new Map();
      groups.set(base, group);
    }
    group.set(chunk, item);
  }

  const records = new Map<string, unknown>();
  for (const [base, group] of groups) {
    const head = group.get(0);

    // chunks without their head belong to a write not yet committed
    if (!head) continue;

    const count = Number(head.chunks?.N);
    const writeId = head.writeId?.S;
    const parts: Uint8Array[] = [];
    for (let chunk = 0; chunk < count; chunk++) {
      const item = group.get(chunk);
      if (!item || item.writeId?.S !== writeId || !item.data?.B) {
        throw new TransientError(
          `${base} changed while it was read (chunk ${chunk} of ${count})`,
          { hint: 'read it again' });
      }
      parts.push(item.data.B);
    }

    const json = (await gunzipAsync(Buffer.concat(parts))).toString('utf8');
    records.set(base, JSON.parse(json));
  }
  return records;
}
