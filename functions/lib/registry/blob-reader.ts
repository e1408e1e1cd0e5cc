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
import { nodeBody, release } from './http.js';
import { backoffDelay, isAbort, sleep, type ResolvedRetryOptions }
  from './retry.js';
import type {
  BlobSource, BytesListener, Descriptor, Logger,
} from './types.js';

export interface BlobReaderOptions {
  retry: ResolvedRetryOptions;
  signal?: AbortSignal;
  onBytes?: BytesListener;
  logger?: Logger;
}

/** Bytes an upload's stream buffers ahead of the request taking them. */
const HIGH_WATER_MARK = 1024 * 1024;

/**
 * Bytes flow from the download's 'data' events straight into the stream
 * an upload reads (`readable()`), with no promise per chunk: the download
 * is paused while that stream is full or no upload wants bytes, and
 * resumed when it asks for more.
 */
export class BlobReader {
  readonly #source: BlobSource;
  readonly #blob: Descriptor;
  readonly #options: BlobReaderOptions;
  readonly #context: RegistryErrorContext;
  readonly #hash: Hash;
  /** The download in progress, if one is open. */
  #download?: Readable;
  #opening = false;
  #closed = false;
  /** The stream an upload reads, and the bytes it still wants. */
  #out?: Readable;
  #left = 0;
  /** Bytes handed on so far. */
  #offset = 0;
  /** Bytes received from downloads: those handed on and `#pending`. */
  #received = 0;
  /** Bytes of a fresh download to drop: a restart from 0 after a break. */
  #skip = 0;
  /** Received bytes no upload stream wanted yet. */
  #pending?: Buffer;
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
   * Checks the digest of an empty blob, which has nothing to download;
   * throws DigestMismatchError when it is not that of no bytes.
   */
  verifyEmpty(): void {
    try {
      this.#verify();
    } catch (error) {
      this.failure ??= error;
      throw error;
    }
  }

  /**
   * A Node stream of the next `length` bytes (all that are left by
   * default). The last bytes of the blob are only handed on once the
   * digest matched; the stream fails with the source's error otherwise.
   */
  readable(length = this.#blob.size - this.#offset): Readable {
    const out: Readable = new Readable({
      highWaterMark: HIGH_WATER_MARK,
      read: () => this.#pull(),
      destroy: (error, callback) => {
        // the upload gave up on its stream: stop downloading for it
        if (this.#out === out) {
          this.#out = undefined;
          this.#download?.pause();
        }
        callback(error);
      },
    });
    this.#out = out;
    this.#left = length;
    return out;
  }

  /** Lets go of the source connection. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#release();
  }

  /** The upload's stream wants bytes. */
  #pull(): void {
    const out = this.#out;
    if (!out) return;
    if (this.failure) {
      this.#fail(this.failure);
      return;
    }
    if (this.#left <= 0 || this.#blob.size === 0) {
      if (this.#blob.size === 0 && !this.#verified &&
        !this.#verifyOrFail()) {
        return;
      }
      this.#out = undefined;
      out.push(null);
      return;
    }

    // bytes left over from a chunk that went past the previous slice
    const pending = this.#pending;
    if (pending) {
      this.#pending = undefined;
      this.#take(pending);
      if (this.#out !== out || this.#pending) return;
    }

    if (this.#download) {
      this.#download.resume();
    } else if (!this.#opening && this.#received < this.#blob.size) {
      void this.#open();
    }
  }

  /** Bytes received, handed on as far as the upload's stream wants. */
  #take(chunk: Buffer): void {
    const out = this.#out;
    if (!out) {
      this.#pending = this.#pending ? Buffer.concat([this.#pending, chunk])
        : chunk;
      this.#download?.pause();
      return;
    }

    if (chunk.length > this.#left) {
      this.#pending = chunk.subarray(this.#left);
      chunk = chunk.subarray(0, this.#left);
      this.#download?.pause();
    }

    this.#hash.update(chunk);
    this.#offset += chunk.length;
    this.#left -= chunk.length;
    if (this.#offset === this.#blob.size) {
      if (!this.#verifyOrFail()) return;

      // read on to the download's end, which frees its connection
      this.#download?.resume();
    }
    this.#options.onBytes?.(chunk.length);

    const more = out.push(chunk);
    if (this.#left === 0) {
      this.#out = undefined;
      out.push(null);
      if (!this.#verified) this.#download?.pause();
    } else if (!more) {
      this.#download?.pause();
    }
  }

  async #open(): Promise<void> {
    const { registry, repository } = this.#source;
    this.#opening = true;
    let download: Readable;
    try {
      const opened = await registry.openBlob(repository, this.#blob.digest,
        this.#received, this.#options.signal);
      if (opened.offset !== this.#received && opened.offset !== 0) {
        await opened.body.cancel().catch(() => undefined);
        throw new RegistryUnavailableError(this.#context,
          `asked for bytes from ${this.#received}, got them from ` +
          `${opened.offset}`, { attempts: this.#breaks + 1 });
      }
      if (opened.size !== undefined && opened.size !== this.#blob.size) {
        await opened.body.cancel().catch(() => undefined);
        throw new DigestMismatchError(this.#context,
          `${this.#blob.size} bytes`, `${opened.size} bytes`, 'size');
      }
      this.#skip = this.#received - opened.offset;
      download = nodeBody(opened.body);
    } catch (error) {
      this.#fail(error);
      return;
    } finally {
      this.#opening = false;
    }

    // closed or failed while it opened: nobody wants it
    if (this.#closed || this.failure) {
      release(download);
      return;
    }
    this.#download = download;
    this.#listen(download);
    if (!this.#out) download.pause();
  }

  #listen(download: Readable): void {
    const size = this.#blob.size;
    download.on('data', (chunk: Buffer) => {
      // bytes past a verified end are not the blob's: ignored
      if (download !== this.#download || this.#verified) return;

      // a restart from 0: drop what was received before the break
      if (this.#skip > 0) {
        const dropped = Math.min(this.#skip, chunk.length);
        this.#skip -= dropped;
        if (dropped === chunk.length) return;
        chunk = chunk.subarray(dropped);
      }

      if (chunk.length > size - this.#received) {
        this.#fail(new DigestMismatchError(this.#context, `${size} bytes`,
          'more than that', 'size'));
        return;
      }
      this.#received += chunk.length;
      this.#take(chunk);
    });
    download.on('end', () => {
      if (download !== this.#download || this.#received === size) return;
      this.#broken(download, new Error(
        `the download ended after ${this.#received} of ${size} bytes`));
    });
    download.on('error', (error) => this.#broken(download, error));
    download.on('close', () => {
      if (download.readableEnded) return;
      this.#broken(download, new Error(
        `the download was cut after ${this.#received} of ${size} bytes`));
    });
  }

  /** A download broke: open it again, up to the retry budget. */
  #broken(download: Readable, error: unknown): void {
    if (download !== this.#download) return;
    this.#release();
    if (this.#closed || this.failure || this.#verified) return;

    const { signal, retry, logger } = this.#options;
    if (isAbort(error, signal)) {
      this.#fail(new RegistryInterruptedError(this.#context, error));
      return;
    }
    if (error instanceof BackupError) {
      this.#fail(error);
      return;
    }

    this.#breaks++;
    if (this.#breaks >= retry.attempts) {
      this.#fail(new RegistryUnavailableError(this.#context,
        `the download broke ${this.#breaks} times, last at byte ` +
        `${this.#offset} of ${this.#blob.size}`, {
          cause: error, attempts: this.#breaks,
          hint: 'the source registry or the network is unstable; try again',
        }));
      return;
    }

    const wait = backoffDelay(retry, this.#breaks);
    logger?.debug('blob download broke; resuming', {
      registry: this.#context.registry, repository: this.#source.repository,
      digest: this.#blob.digest, offset: this.#offset, delayMs: wait,
    });
    this.#opening = true;
    sleep(wait, signal).then(() => {
      this.#opening = false;
      if (this.#closed || this.failure) return;
      return this.#open();
    }, (abort: unknown) => {
      this.#opening = false;
      this.#fail(new RegistryInterruptedError(this.#context, abort));
    });
  }

  /** The source side failed: the upload's stream fails with it. */
  #fail(error: unknown): void {
    this.failure ??= error;
    this.#release();
    const out = this.#out;
    this.#out = undefined;
    out?.destroy(this.failure as Error);
  }

  /**
   * Lets go of the download: one read to its end keeps its connection;
   * else it is closed, never waited for (after an abort it may never
   * report its end). Bytes received but not handed on are dropped; a
   * download opened again asks for them anew.
   */
  #release(): void {
    const download = this.#download;
    this.#download = undefined;
    this.#pending = undefined;
    this.#received = this.#offset;
    if (download && !download.readableEnded) download.destroy();
  }

  /** Checks the digest: true when it matches, else fails the reader. */
  #verifyOrFail(): boolean {
    try {
      this.#verify();
      return true;
    } catch (error) {
      this.#fail(error);
      return false;
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
