// Bounded concurrency with one failure for the whole copy.
//
// A copy runs many requests at once. When one fails, the others are
// aborted, and the copy reports the failure that came first, not the
// interruptions it caused in the others.

import { InterruptedError } from '../errors.js';

export class Work {
  readonly #controller = new AbortController();
  /** Aborted by the caller's signal or by the first failure. */
  readonly signal: AbortSignal;
  readonly #limit: number;
  readonly #waiting: (() => void)[] = [];
  #active = 0;
  #failure: { error: unknown } | undefined;

  constructor(limit: number, signal?: AbortSignal) {
    this.#limit = limit;

    // any() holds the caller's signal weakly: a long-lived signal shared
    // by many copies collects no listeners
    this.signal = signal
      ? AbortSignal.any([signal, this.#controller.signal])
      : this.#controller.signal;
  }

  /**
   * Runs `task` when fewer than `limit` tasks run. A failure is recorded,
   * aborts the rest, and is rethrown by `settle`; the returned promise
   * then resolves undefined.
   */
  async run<T>(task: () => Promise<T>): Promise<T | undefined> {
    if (this.#active < this.#limit) {
      this.#active++;
    } else {
      // a finishing task hands its slot over without releasing it
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }

    try {
      if (this.signal.aborted) return undefined;
      return await task();
    } catch (error) {
      this.fail(error);
      return undefined;
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#active--;
    }
  }

  /** Records a failure (the first one wins) and aborts everything. */
  fail(error: unknown): void {
    if (this.#failure) return;

    // after the caller's abort, any failure is a consequence of it
    if (this.signal.aborted) {
      this.#failure = { error: this.#interrupted() };
      return;
    }
    this.#failure = { error };
    this.#controller.abort(error);
  }

  /**
   * Waits for every promise, then throws the first failure, or an
   * InterruptedError when the caller aborted.
   */
  async settle(promises: Iterable<Promise<unknown>>): Promise<void> {
    await Promise.allSettled(promises);
    this.check();
  }

  /** Throws the first failure, or InterruptedError after an abort. */
  check(): void {
    if (this.#failure) throw this.#failure.error;
    if (this.signal.aborted) throw this.#interrupted();
  }

  #interrupted(): InterruptedError {
    return new InterruptedError('the copy was interrupted',
      { cause: this.signal.reason });
  }
}
