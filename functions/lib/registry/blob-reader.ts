// Reads a blob from its source registry for an upload: in order, once,
// hashed as it goes, and whole despite broken connections.
//
// A download that breaks is opened again from where it stopped (a Range
// request); a source that ignores Range starts over and the bytes already
// passed on are skipped, so the upload reading from us never notices. The
// digest is checked before the last bytes are handed on, so a registry
// never receives a complete body with the wrong content.

import type { Hash } from 'node:crypto';
import { Readable } from 'node:stream';

import { BackupError } from '../errors.js';
import { hashDigest, hashFor } from './digest.js';
import {
  DigestMismatchError, RegistryInterruptedError, RegistryUnavailableError,
  type RegistryErrorContext,
} from './errors.js';
import { backoffDelay, isAbort, sleep, type ResolvedRetryOptions }
  from './retry.js';
import type {
  BlobSource, BytesListener, Descriptor, Logger,
} from './types.js';

type ReadResult =
  Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']>>;

export interface BlobReaderOptions {
  retry: ResolvedRetryOptions;
  signal?: AbortSignal;
  onBytes?: BytesListener;
  logger?: Logger;
}

export class BlobReader {
  readonly #source: BlobSource;
  readonly #blob: Descriptor;
  readonly #options: BlobReaderOptions;
  readonly #context: RegistryErrorContext;
  readonly #hash: Hash;
  #reader?: ReadableStreamDefaultReader<Uint8Array>;
  /** Bytes handed on so far. */
  #offset = 0;
  /** Bytes of a fresh stream to drop: a restart from 0 after a break. */
  #skip = 0;
  /** The rest of a chunk that went past a slice's end. */
  #pending?: Uint8Array;
  #breaks = 0;
  #verified = false;

  /** The error the source side failed with, once it has failed. */
  failure?: unknown;

  constructor(source: BlobSource, blob: Descriptor,
    options: BlobReaderOptions) {
    this.#source = source;
    this.#blob = blob;
    this.#options = options;
    this.#hash = hashFor(blob.digest);
    this.#context = {
      registry: source.registry.endpoint.host,
      repository: source.repository,
      reference: blob.digest,
      operation: 'read blob',
    };
  }

  /** Bytes handed on so far. */
  get offset(): number {
    return this.#offset;
  }

  /**
   * The next chunk of at most `max` bytes, or undefined after the last,
   * which is only handed on once the digest matched.
   */
  async next(max = Number.POSITIVE_INFINITY):
    Promise<Uint8Array | undefined> {
    try {
      return await this.#next(max);
    } catch (error) {
      this.failure ??= error;
      await this.close();
      throw error;
    }
  }

  /**
   * A Node stream of the next `length` bytes (all that are left by
   * default), pulled chunk by chunk as the upload takes them.
   */
  readable(length = this.#blob.size - this.#offset): Readable {
    let left = length;
    const readable = new Readable({
      highWaterMark: 4 * 64 * 1024,
      read: () => {
        if (left <= 0) {
          readable.push(null);
          return;
        }
        this.next(left).then((chunk) => {
          if (!chunk) throw new Error('the blob ended before the slice did');
          left -= chunk.length;
          readable.push(chunk);
          if (left <= 0) readable.push(null);
        }).catch((error: unknown) => readable.destroy(error as Error));
      },
    });
    return readable;
  }

  /** Lets go of the source connection. */
  async close(): Promise<void> {
    const reader = this.#reader;
    this.#reader = undefined;
    if (!reader) return;

    // read to the end of a finished download, so its connection is reused;
    // not after an abort: fetch's body may then never report its end
    if (this.#verified && !this.#options.signal?.aborted) {
      const end = await reader.read().catch(() => undefined);
      if (end?.done) return;
    }
    await reader.cancel().catch(() => undefined);
  }

  async #next(max: number): Promise<Uint8Array | undefined> {
    const size = this.#blob.size;
    if (this.#verified) return undefined;

    // nothing to download; the digest must still be that of no bytes
    if (size === 0) {
      this.#verify();
      return undefined;
    }

    for (;;) {
      let chunk = this.#pending;
      this.#pending = undefined;
      if (!chunk) {
        chunk = await this.#read();
        if (!chunk) continue;
      }

      if (chunk.length > size - this.#offset) {
        throw new DigestMismatchError(this.#context, `${size} bytes`,
          'more than that', 'size');
      }
      if (chunk.length > max) {
        this.#pending = chunk.subarray(max);
        chunk = chunk.subarray(0, max);
      }

      this.#hash.update(chunk);
      this.#offset += chunk.length;
      if (this.#offset === size) this.#verify();
      this.#options.onBytes?.(chunk.length);
      return chunk;
    }
  }

  /** A chunk from the source, or undefined after a break was mended. */
  async #read(): Promise<Uint8Array | undefined> {
    const size = this.#blob.size;
    if (!this.#reader) await this.#open();

    let result: ReadResult;
    try {
      result = await this.#reader!.read();
    } catch (error) {
      await this.#broken(error);
      return undefined;
    }

    if (result.done) {
      await this.#broken(new Error(
        `the download ended after ${this.#offset} of ${size} bytes`));
      return undefined;
    }

    // a restart from 0: drop what was handed on before the break
    let chunk = result.value;
    if (this.#skip > 0) {
      const dropped = Math.min(this.#skip, chunk.length);
      this.#skip -= dropped;
      chunk = chunk.subarray(dropped);
      if (chunk.length === 0) return undefined;
    }
    return chunk;
  }

  async #open(): Promise<void> {
    const { registry, repository } = this.#source;
    const opened = await registry.openBlob(repository, this.#blob.digest,
      this.#offset, this.#options.signal);

    if (opened.offset !== this.#offset && opened.offset !== 0) {
      await opened.body.cancel().catch(() => undefined);
      throw new RegistryUnavailableError(this.#context,
        `asked for bytes from ${this.#offset}, got them from ` +
        `${opened.offset}`, { attempts: this.#breaks + 1 });
    }
    if (opened.size !== undefined && opened.size !== this.#blob.size) {
      await opened.body.cancel().catch(() => undefined);
      throw new DigestMismatchError(this.#context, `${this.#blob.size} bytes`,
        `${opened.size} bytes`, 'size');
    }

    this.#skip = this.#offset - opened.offset;
    this.#reader = opened.body.getReader();
  }

  /** A download broke: open it again, up to the retry budget. */
  async #broken(error: unknown): Promise<void> {
    await this.close();
    const { signal, retry, logger } = this.#options;
    if (isAbort(error, signal)) {
      throw new RegistryInterruptedError(this.#context, error);
    }
    if (error instanceof BackupError) throw error;

    this.#breaks++;
    if (this.#breaks >= retry.attempts) {
      throw new RegistryUnavailableError(this.#context,
        `the download broke ${this.#breaks} times, last at byte ` +
        `${this.#offset} of ${this.#blob.size}`, {
          cause: error, attempts: this.#breaks,
          hint: 'the source registry or the network is unstable; try again',
        });
    }

    const wait = backoffDelay(retry, this.#breaks);
    logger?.debug('blob download broke; resuming', {
      registry: this.#context.registry, repository: this.#source.repository,
      digest: this.#blob.digest, offset: this.#offset, delayMs: wait,
    });
    try {
      await sleep(wait, signal);
    } catch (abort) {
      throw new RegistryInterruptedError(this.#context, abort);
    }
  }

  #verify(): void {
    const actual = hashDigest(this.#hash, this.#blob.digest);
    if (actual !== this.#blob.digest) {
      throw new DigestMismatchError(this.#context, this.#blob.digest, actual,
        'the blob\'s digest');
    }
    this.#verified = true;
  }
}
