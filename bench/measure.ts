// Runs a program and measures what the benchmark reports about it: wall
// time and peak resident memory.
//
// Peak RSS comes from GNU time (`%M`, the kernel's own high-water mark of
// the process) when /usr/bin/time is installed; otherwise from polling
// VmHWM in /proc, which can miss growth in the last few milliseconds.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const GNU_TIME = '/usr/bin/time';

/** Programs being measured right now, for `killMeasured`. */
const running = new Set<ChildProcess>();

export interface Measured {
  /** Wall time from spawn to exit. */
  ms: number;
  /** Peak RSS of the process (the largest one, for a pipeline). */
  peakRssBytes?: number;
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface MeasureOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Where GNU time writes its report. Default the system temp dir. */
  scratchDir?: string;
  /** Kill the program after this long. Default 10 minutes. */
  timeoutMs?: number;
}

/**
 * Runs `command args` to completion and measures it. Never throws for a
 * non-zero exit: the caller decides what a failure means.
 */
export async function measure(
  command: string, args: readonly string[], options: MeasureOptions = {},
): Promise<Measured> {
  const useGnuTime = existsSync(GNU_TIME);
  const timeFile = join(options.scratchDir ?? tmpdir(),
    `ghcr-backup-bench-time-${randomUUID()}.txt`);

  try {
    const [file, argv] = useGnuTime
      ? [GNU_TIME, ['-f', '%M', '-o', timeFile, command, ...args]]
      : [command, [...args]];
    const result = await run(file, argv, options, !useGnuTime);
    if (!useGnuTime) return result;

    // the last line: GNU time puts "Command exited with..." before it
    const text = await readFile(timeFile, 'utf8').catch(() => '');
    const kib = Number(text.trim().split('\n').pop());
    return {
      ...result,
      peakRssBytes: Number.isFinite(kib) && kib > 0 ? kib * 1024 : undefined,
    };
  } finally {
    await rm(timeFile, { force: true });
  }
}

/** Throws with the end of the program's output when it did not exit 0. */
export function expectSuccess(result: Measured, what: string): void {
  if (result.exitCode === 0) return;
  throw new Error(`${what} failed (exit ${result.exitCode}):\n` +
    `${result.stderr}\n${result.stdout}`.slice(-4000));
}

/** Kills every program `measure` is running (an interrupted benchmark). */
export function killMeasured(): void {
  for (const child of running) child.kill('SIGKILL');
}

function run(
  file: string, argv: readonly string[], options: MeasureOptions,
  pollRss: boolean,
): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(file, [...argv], {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(child);
    child.once('exit', () => running.delete(child));
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));

    let peak = 0;
    const poller = pollRss && child.pid !== undefined
      ? setInterval(() => {
        peak = Math.max(peak, readVmHwm(child.pid!) ?? 0);
      }, 10)
      : undefined;
    const timer = setTimeout(
      () => child.kill('SIGKILL'), options.timeoutMs ?? 600_000);

    child.once('error', (error) => {
      clearInterval(poller);
      clearTimeout(timer);
      reject(new Error(`could not start ${file}: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      const ms = performance.now() - started;
      clearInterval(poller);
      clearTimeout(timer);
      resolve({
        ms,
        peakRssBytes: pollRss && peak > 0 ? peak : undefined,
        exitCode: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
      });
    });
  });
}

/** VmHWM of a live process in bytes; undefined once it is gone. */
function readVmHwm(pid: number): number | undefined {
  try {
    // synchronous on purpose: a read of /proc never blocks
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmHWM:\s+(\d+) kB/m.exec(text);
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

