// What the commands print: a progress line on a terminal, summaries,
// `--json` objects, and errors as one paragraph without a stack trace.
//
// Progress goes to stderr and results to stdout, so `--json` output can be
// piped while a person still sees the progress.

import { parseArgs, type ParseArgsConfig } from 'node:util';

import { BackupError, InterruptedError, redact } from '../lib/errors.js';

/** Exit statuses shared by every command. */
export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  interrupted: 130,
} as const;

/** A command line that does not parse; printed with a pointer to --help. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The streams a command writes to; tests may pass their own. */
export interface Terminal {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

export const processTerminal: Terminal = {
  stdout: process.stdout,
  stderr: process.stderr,
};

/**
 * One status line on stderr, rewritten in place at most every
 * `intervalMs`. Silent when stderr is not a terminal: logs and CI output
 * get the summary only.
 */
export class ProgressLine {
  readonly #stream: Terminal['stderr'];
  readonly #intervalMs: number;
  readonly #enabled: boolean;
  #lastDrawn = 0;
  #pending: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #visible = false;

  constructor(terminal: Terminal, intervalMs = 100) {
    this.#stream = terminal.stderr;
    this.#intervalMs = intervalMs;
    this.#enabled = terminal.stderr.isTTY === true;
  }

  /** Shows `text` now, or at the end of the current interval. */
  update(text: string): void {
    if (!this.#enabled) return;

    this.#pending = text;
    const wait = this.#lastDrawn + this.#intervalMs - Date.now();
    if (wait <= 0) {
      this.#draw();
    } else {
      this.#timer ??= setTimeout(() => this.#draw(), wait);
    }
  }

  /** Erases the line, so what follows starts on a clean one. */
  clear(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending = undefined;
    if (this.#visible) this.#stream.write('\r\x1b[2K');
    this.#visible = false;
  }

  #draw(): void {
    this.#timer = undefined;
    if (this.#pending === undefined) return;

    // a terminal with no size (a pty nobody sized) reports 0 columns
    const width = Math.max(20, (this.#stream.columns || 80) - 1);
    this.#stream.write(`\r\x1b[2K${this.#pending.slice(0, width)}`);
    this.#pending = undefined;
    this.#lastDrawn = Date.now();
    this.#visible = true;
  }
}

/** `1.5 GiB`, `310.2 MiB`, `512 B`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** `850 ms`, `4.2 s`, `3 min 05 s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;

  const seconds = Math.round(ms / 1000);
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${String(seconds % 60).padStart(2, '0')} s`;
}

/** `3 blobs`, `1 blob`. */
export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/** One JSON object on one line of stdout. */
export function printJson(terminal: Terminal, value: unknown): void {
  terminal.stdout.write(`${JSON.stringify(value)}\n`);
}

/**
 * Prints an error as one paragraph on stderr and returns the exit status
 * for it. Our errors say what failed and what to do; anything else is a
 * bug, shown by its message only. Never a stack trace, never a secret.
 */
export function reportError(terminal: Terminal, error: unknown,
  command: string): number {
  if (error instanceof UsageError) {
    terminal.stderr.write(`error: ${error.message}\n` +
      `Run \`npm start -- ${command} --help\` for usage.\n`);
    return ExitCode.usage;
  }

  terminal.stderr.write(`error: ${describeError(error)}\n`);
  return error instanceof InterruptedError ? ExitCode.interrupted
    : ExitCode.failed;
}

/** The user-facing text of an error, redacted. */
export function describeError(error: unknown): string {
  if (error instanceof BackupError) return redact(error.describe());
  if (error instanceof Error) {
    return redact(`unexpected ${error.name}: ${error.message}`);
  }
  return redact(`unexpected failure: ${String(error)}`);
}

/** `{ name, message }` of an error for `--json` output, redacted. */
export function errorJson(error: unknown): { name: string; message: string } {
  const name = error instanceof Error ? error.name : 'Error';
  return { name, message: describeError(error) };
}

/**
 * Reads a command line with `read`. On `--help` prints `help` and returns
 * the exit status; on a bad command line prints why and returns its exit
 * status; else returns the command.
 */
export function readCommandLine<T>(terminal: Terminal, name: string,
  help: string, read: () => T | 'help'): { command: T } | { exit: number } {
  let command: T | 'help';
  try {
    command = read();
  } catch (error) {
    return { exit: reportError(terminal, error, name) };
  }
  if (command === 'help') {
    terminal.stdout.write(help);
    return { exit: ExitCode.ok };
  }
  return { command };
}

/** The whole number `text` given to `flag`, within [min, max]. */
export function wholeNumberFlag(flag: string, text: string, min: number,
  max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) {
    throw new UsageError(`${flag} must be a whole number from ${min} to ` +
      `${max}, got "${text}"`);
  }
  return value;
}

/**
 * An abort signal that the first Ctrl-C fires, so requests stop and a
 * summary can still be printed; a second Ctrl-C leaves at once.
 */
export function abortOnInterrupt(): { signal: AbortSignal;
  dispose(): void } {
  const controller = new AbortController();
  const onSignal = () => {
    if (controller.signal.aborted) process.exit(ExitCode.interrupted);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  return {
    signal: controller.signal,
    dispose: () => { process.off('SIGINT', onSignal); },
  };
}

/** node:util's parseArgs, its complaints turned into usage errors. */
export function parseFlags<T extends ParseArgsConfig>(config: T):
  ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}
