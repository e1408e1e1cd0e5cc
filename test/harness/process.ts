// Child processes, temporary folders and ports for the harness, with one
// place that stops everything a test file started, even when it fails.

import { execFile, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const children = new Set<ChildProcess>();
const stoppers = new Set<() => Promise<void>>();
const tempDirs = new Set<string>();
let hooksInstalled = false;

/**
 * Remembers a child so that it is killed when this process exits or is
 * told to stop, whatever state the tests are in.
 */
export function trackChild(child: ChildProcess): void {
  installExitHooks();
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** Registers an async stop function that `stopAll` runs. */
export function onStopAll(stop: () => Promise<void>): () => void {
  stoppers.add(stop);
  return () => stoppers.delete(stop);
}

/**
 * Stops every registry, server and proxy this process started and that is
 * still running. Meant for `afterAll(stopAll)`; safe to call twice.
 */
export async function stopAll(): Promise<void> {
  const pending = [...stoppers];
  stoppers.clear();
  await Promise.allSettled(pending.map((stop) => stop()));
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;

  // 'exit' handlers run synchronously: signals and sync removal only
  process.on('exit', cleanUpNow);

  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      cleanUpNow();

      // re-raise with the default action when nobody else handles it
      if (process.listenerCount(signal) === 0) {
        process.kill(process.pid, signal);
      }
    };
    process.once(signal, onSignal);
  }
}

function cleanUpNow(): void {
  killChildren();
  for (const dir of tempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      continue;
    }
  }
  tempDirs.clear();
}

function killChildren(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
    }
  }
}

/**
 * A fresh folder under the system temp dir. The caller removes it with
 * `removeDir`; whatever is left is removed when the process exits.
 */
export async function makeTempDir(label: string): Promise<string> {
  installExitHooks();
  const dir = await mkdtemp(join(tmpdir(), `ghcr-backup-test-${label}-`));
  tempDirs.add(dir);
  return dir;
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  tempDirs.delete(dir);
}

/** Makes `server` listen on a free port of 127.0.0.1; returns the port. */
export function listenOnLoopback(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : 0);
    });
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.unref();
  const port = await listenOnLoopback(server);

  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

/**
 * `stop` made safe to call again (by a test, then by `stopAll`): the first
 * call runs it, and every call waits for that one run.
 */
export function stopOnce(stop: () => Promise<void>): () => Promise<void> {
  let stopped: Promise<void> | undefined;
  return () => (stopped ??= stop());
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** Kill the program after this long; generous by default. */
  timeoutMs?: number;
  /** Text to hide from error messages (passwords on a command line). */
  secrets?: readonly string[];
}

export interface RunResult {
  stdout: Buffer;
  stderr: string;
}

/**
 * Runs a program to completion. Throws an error that names the command,
 * its exit status and its stderr, with `secrets` blanked out.
 */
export function runCommand(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(command, [...args], {
      env: options.env ?? process.env,
      timeout: options.timeoutMs ?? 300_000,
      maxBuffer: 256 * 1024 * 1024,
      encoding: 'buffer',
    }, (error, stdout, stderr) => {
      const errText = stderr.toString('utf8');
      if (!error) {
        resolve({ stdout, stderr: errText });
        return;
      }

      const hide = (text: string) => (options.secrets ?? []).reduce(
        (out, secret) => secret ? out.split(secret).join('***') : out, text);
      const status = error.killed ? 'was killed (timeout)'
        : `exited with ${error.code ?? error.signal}`;
      reject(new Error(hide(
        `${command} ${args.join(' ')} ${status}\n${errText.trim()}`)));
    });
  });
}
