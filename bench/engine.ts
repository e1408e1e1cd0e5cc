// Our CLI as the benchmark runs it: one Node process, measured from the
// outside like the baselines, with credentials from a Docker config of the
// benchmark's own.

import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { measure, type Measured } from './measure.js';

export const PROJECT_DIR = resolve(dirname(fileURLToPath(import.meta.url)),
  '..');
/** What `npm start` runs, built from the sources by scripts/build.mjs. */
const CLI = join(PROJECT_DIR, 'dist', 'cli', 'main.js');
const BUILD = join(PROJECT_DIR, 'scripts', 'build.mjs');

export interface RegistryLogin {
  /** `127.0.0.1:PORT` */
  host: string;
  username: string;
  password: string;
}

let built: Promise<unknown> | undefined;

/** Builds dist/ as `npm start` does, once per benchmark and untimed. */
function buildCli(): Promise<unknown> {
  built ??= promisify(execFile)(process.execPath, [BUILD],
    { cwd: PROJECT_DIR });
  return built;
}

/**
 * Writes `DIR/config.json` with an `auths` entry per registry and returns
 * the environment that points the CLI at it. Nothing of the user's own
 * Docker config or state reaches the benchmark.
 */
export async function cliEnv(
  dir: string, logins: readonly RegistryLogin[],
  extra: NodeJS.ProcessEnv = {},
): Promise<NodeJS.ProcessEnv> {
  const dockerConfig = join(dir, 'docker');
  await mkdir(dockerConfig, { recursive: true });
  const auths: Record<string, { auth: string }> = {};
  for (const login of logins) {
    auths[login.host] = { auth: Buffer.from(
      `${login.username}:${login.password}`).toString('base64') };
  }
  await writeFile(join(dockerConfig, 'config.json'),
    JSON.stringify({ auths }));

  return {
    PATH: process.env.PATH,
    HOME: dir,
    DOCKER_CONFIG: dockerConfig,
    XDG_STATE_HOME: join(dir, 'state-home'),
    ...extra,
  };
}

/**
 * Runs the built `dist/cli/main.js ARGS` in one Node process, as `npm
 * start` does after its build (so neither npm nor the build is timed, and
 * the peak RSS measured is the engine's), with the Node that runs the
 * benchmark.
 */
export async function runCli(
  args: readonly string[], env: NodeJS.ProcessEnv, scratchDir: string,
  nodeArgs: readonly string[] = [],
): Promise<Measured> {
  await buildCli();
  return measure(process.execPath, [...nodeArgs, CLI, ...args],
    { env, cwd: PROJECT_DIR, scratchDir });
}

/** The last line of stdout that parses as a JSON object. */
export function parseJsonReport(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n').reverse();
  for (const line of lines) {
    try {
      const value: unknown = JSON.parse(line);
      if (value && typeof value === 'object') {
        return value as Record<string, unknown>;
      }
    } catch {
      continue;
    }
  }

  // a pretty-printed object spans lines
  try {
    return JSON.parse(stdout) as Record<string, unknown>;
  } catch {
    throw new Error(`no JSON report on stdout:\n${stdout.slice(-2000)}`);
  }
}
