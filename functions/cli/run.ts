// `npm start -- run --org ORG --target TARGET`: backs up an organisation's
// (or a user's) packages by running the workflow on this machine: the same
// definition as in the cloud, its Task states served in-process, the
// stores under --state.

import { homedir } from 'node:os';
import type { CopyEvent } from '../lib/copy/types.js';
import {
  BackupError, InterruptedError, InvalidInputError,
} from '../lib/errors.js';
import { DEFAULT_GITHUB_API } from '../lib/github/index.js';
import { registryCredentials } from '../lib/registry/credentials.js';
import { parseRegistry } from '../lib/registry/reference.js';
import type { RegistryEndpoint } from '../lib/registry/types.js';
import type { RunDeps } from '../lib/run/deps.js';
import {
  MAX_IMAGE_CONCURRENCY, parseExecutionInput,
} from '../lib/run/input.js';
import { getRunRecord } from '../lib/run/record.js';
import { Registries } from '../lib/run/registries.js';
import { imageName } from '../lib/run/summarize.js';
import type { ExecutionInput, RunSummary } from '../lib/run/types.js';
import { LocalDigestStore } from '../lib/store/local-digest-store.js';
import { LocalRunStore } from '../lib/store/local-run-store.js';
import type { ImageResult } from '../lib/store/types.js';
import { workflowDefinition } from '../local/definition.js';
import { localHandlers } from '../local/handlers.js';
import { runWorkflowLocally, type LocalRunReport }
  from '../local/run-workflow.js';
import { defaultStateDir } from './copy.js';
import {
  ExitCode, ProgressLine, UsageError, abortOnInterrupt, errorJson,
  formatBytes, formatDuration, parseFlags, plural, printJson, processTerminal,
  readCommandLine, reportError, wholeNumberFlag, type Terminal,
} from './output.js';

export const HELP = `Usage: npm start -- run (--org ORG | --user NAME)
         --target [http://]HOST[:PORT][/PATH] [OPTIONS]

Backs up every container package of a GitHub organisation (or user) into
the target registry: package NAME with tag T lands at TARGET/NAME:T. Runs
the backup workflow on this machine; a rerun moves only what changed.

Options:
  --org ORG                 the organisation whose packages to back up
  --user NAME               a personal account instead of an organisation
  --target TARGET           the registry, and an optional path, to copy to
                            (http:// marks a plain-HTTP registry)
  --packages REGEX          only packages whose name matches
  --exclude-tags REGEX      never copy tags that match
  --all-versions            keep every semver tag, not only the highest
                            of each major.minor line
  --concurrency N           images copied at once (default 4)
  --dry-run                 copy nothing; print the images and the bytes
                            that would move
  --json                    print the report as one JSON object on stdout
  --state DIR               local state: blob locations, runs, inventory
                            (default $XDG_STATE_HOME/ghcr-backup, else
                            ~/.local/state/ghcr-backup)
  --github-api URL          GitHub's REST API (default ${DEFAULT_GITHUB_API};
                            GitHub Enterprise Server: https://HOST/api/v3)
  --source-registry REG     where the packages are pulled from,
                            [http://]HOST[:PORT] (default ghcr.io)
  -h, --help                show this help

GITHUB_TOKEN, a token with read:packages, authenticates the API and the
source registry. The target's credentials come from the Docker config
($DOCKER_CONFIG/config.json, else ~/.docker/config.json); an ECR target
uses the AWS credentials of the environment.

Exit status: 0 when every selected image is in the target, 1 when any
failed or the run could not start, 2 for a wrong command line.
`;

/** Everything the command needs, read once from arguments and env. */
export interface RunCommand {
  input: ExecutionInput;
  githubApi: string;
  source: RegistryEndpoint;
  githubToken: string;
  githubUsername?: string;
  json: boolean;
  stateDir: string;
  dockerConfigDir?: string;
  homeDir: string;
  helperEnv: NodeJS.ProcessEnv;
}

/** Failures listed on the terminal; --json and the store keep all. */
const FAILURES_SHOWN = 50;
const GONE_SHOWN = 50;

export async function main(args: string[], terminal: Terminal =
  processTerminal, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const read = readCommandLine(terminal, 'run', HELP,
    () => readCommand(args, env));
  if ('exit' in read) return read.exit;
  const { command } = read;

  const interrupt = abortOnInterrupt();

  const runs = new LocalRunStore({ dir: command.stateDir });
  const digests = new LocalDigestStore({ dir: command.stateDir });
  const progress = new RunProgress(new ProgressLine(terminal));
  try {
    const deps = localDeps(command, runs, digests, progress);
    const report = await runWorkflowLocally(command.input, {
      definition: await workflowDefinition(command.stateDir),
      handlers: localHandlers(deps),
      // synthesized by CDK, and validated by the tests
      validate: false,
      signal: interrupt.signal,
    });
    progress.clear();
    if (interrupt.signal.aborted) {
      throw new InterruptedError('the backup was interrupted', {
        hint: 'run it again: what was copied is skipped' });
    }
    return await printOutcome(terminal, command, deps, progress.runId,
      report);
  } catch (error) {
    progress.clear();
    if (command.json) {
      printJson(terminal, { status: 'failed', error: errorJson(error) });
    }
    return reportError(terminal, error, 'run');
  } finally {
    interrupt.dispose();
    await digests.close();
  }
}

/** Parses the command line; throws UsageError naming what is wrong. */
export function readCommand(args: string[], env: NodeJS.ProcessEnv):
  RunCommand | 'help' {
  const parsed = parseFlags({
    args,
    options: {
      org: { type: 'string' },
      user: { type: 'string' },
      target: { type: 'string' },
      packages: { type: 'string' },
      'exclude-tags': { type: 'string' },
      'all-versions': { type: 'boolean', default: false },
      concurrency: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      state: { type: 'string' },
      'github-api': { type: 'string' },
      'source-registry': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });

  const { values } = parsed;
  if (values.help) return 'help';
  if (!values.target) throw new UsageError('--target is required');
  if (values.state === '') throw new UsageError('--state needs a directory');

  const concurrency = values.concurrency === undefined ? undefined
    : wholeNumberFlag('--concurrency', values.concurrency, 1,
      MAX_IMAGE_CONCURRENCY);

  const input: ExecutionInput = {
    ...(values.org !== undefined ? { org: values.org } : {}),
    ...(values.user !== undefined ? { user: values.user } : {}),
    target: values.target,
    ...(values.packages !== undefined ? { packages: values.packages } : {}),
    ...(values['exclude-tags'] !== undefined
      ? { excludeTags: values['exclude-tags'] } : {}),
    allVersions: values['all-versions'],
    dryRun: values['dry-run'],
    ...(concurrency !== undefined ? { concurrency } : {}),
  };

  // the workflow checks its input again; checking here names the flags
  try {
    parseExecutionInput(input);
  } catch (error) {
    throw new UsageError(flagNames(error instanceof InvalidInputError
      ? error.message : String(error)));
  }

  const source = parseFlag('--source-registry',
    () => parseRegistry(values['source-registry'] ?? 'ghcr.io'));
  const githubApi = (values['github-api'] ?? DEFAULT_GITHUB_API)
    .replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]/.test(githubApi)) {
    throw new UsageError(`--github-api is not a URL: ${githubApi}`);
  }

  const githubToken = env.GITHUB_TOKEN?.trim();
  if (!githubToken) {
    throw new UsageError('GITHUB_TOKEN is not set: export a token with ' +
      'read:packages (it reads the API and pulls from the source registry)');
  }

  const homeDir = env.HOME || homedir();
  return {
    input,
    githubApi,
    source,
    githubToken,
    githubUsername: env.GITHUB_USERNAME || undefined,
    json: values.json,
    stateDir: values.state ?? defaultStateDir(env, homeDir),
    dockerConfigDir: env.DOCKER_CONFIG || undefined,
    homeDir,
    helperEnv: env,
  };
}

/** The input's field names, as the flags a person typed. */
function flagNames(message: string): string {
  const flags: Record<string, string> = {
    '"org"': '--org', '"user"': '--user', '"target"': '--target',
    '"packages"': '--packages', '"excludeTags"': '--exclude-tags',
    '"concurrency"': '--concurrency',
  };
  return message.replace(/"[A-Za-z]+"/g, (field) => flags[field] ?? field);
}

function parseFlag<T>(flag: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    const reason = error instanceof BackupError ? error.describe()
      : String(error);
    throw new UsageError(`${flag}: ${reason}`);
  }
}

function localDeps(command: RunCommand, runs: LocalRunStore,
  digests: LocalDigestStore, progress: RunProgress): RunDeps {
  const registries = new Registries({
    credentials: registryCredentials({
      dockerConfigDir: command.dockerConfigDir,
      homeDir: command.homeDir,
      githubToken: command.githubToken,
      githubUsername: command.githubUsername,
      githubHosts: [command.source.host],
      helperEnv: command.helperEnv,
    }),
  });

  return {
    runs,
    digests,
    github: { token: command.githubToken, api: command.githubApi },
    source: command.source,
    registry: (endpoint) => registries.registry(endpoint),
    prepareRepository: (target, repository) =>
      registries.prepareRepository(target, repository),
    // one page at a time: --concurrency images of it at once
    pageConcurrency: 1,
    blobConcurrency: 4,
    observer: progress,
  };
}

/** Prints the summary (or the error that stopped the run). */
async function printOutcome(terminal: Terminal, command: RunCommand,
  deps: RunDeps, runId: string | undefined, report: LocalRunReport):
  Promise<number> {
  // no run id: the run stopped before its plan was stored (input, token,
  // org, target): that error is the whole story
  const summary = runId === undefined ? undefined
    : (await getRunRecord(deps.runs, runId).catch(() => undefined))?.summary;
  if (!summary || runId === undefined) {
    const error = report.cause ?? new Error(report.error?.message);
    if (command.json) {
      printJson(terminal, { status: 'failed', runId,
        error: errorJson(error) });
    }
    return reportError(terminal, error, 'run');
  }

  const results = await deps.runs.listResults(runId);
  const failed = results.filter((result) => result.status === 'failed');
  const record = await getRunRecord(deps.runs, runId);

  if (command.json) {
    printJson(terminal, {
      status: summary.succeeded ? 'succeeded' : 'failed',
      ...summary,
      failures: failed.map(failureJson),
      goneFromSource: { count: record.counts.goneFromSource,
        tags: record.goneFromSource },
      ...(summary.dryRun ? { plan: results
        .filter((result) => result.status === 'copied')
        .map(planJson) } : {}),
    });
    return summary.succeeded ? ExitCode.ok : ExitCode.failed;
  }

  const out: string[] = [];
  if (summary.dryRun) out.push(...dryRunLines(results));
  out.push(...emptySelectionLines(command, record.counts));
  out.push(...summaryLines(command, summary));

  if (record.goneFromSource.length > 0) {
    out.push('', `Gone from the source (kept in the backup):`);
    for (const tag of record.goneFromSource.slice(0, GONE_SHOWN)) {
      out.push(`  ${tag}`);
    }
    const more = record.counts.goneFromSource - GONE_SHOWN;
    if (more > 0) out.push(`  and ${more} more`);
  }

  if (failed.length > 0) {
    out.push('', 'Failed:');
    for (const result of failed.slice(0, FAILURES_SHOWN)) {
      const reason = result.error ?? { name: 'Error', message: '' };
      out.push(`  ${imageName(result)}`,
        `    ${reason.name}: ${reason.message.replace(/\n/g, '\n    ')}`);
    }
    if (failed.length > FAILURES_SHOWN) {
      out.push(`  and ${failed.length - FAILURES_SHOWN} more ` +
        '(--json lists every one)');
    }
  }
  if (summary.error && summary.error.name !== 'ImagesFailed') {
    out.push('', `error: ${summary.error.name}: ${summary.error.message}`);
  }

  terminal.stdout.write(`${out.join('\n')}\n`);
  return summary.succeeded ? ExitCode.ok : ExitCode.failed;
}

function summaryLines(command: RunCommand, summary: RunSummary): string[] {
  const { images, blobs } = summary;
  const owner = command.input.org ?? command.input.user;
  const verb = summary.dryRun ? 'would copy' : 'copied';
  const lines = [
    `${summary.dryRun ? 'Dry run of the backup' : 'Backed up'} ${owner} ` +
      `to ${command.input.target} ` +
      `(${summary.succeeded ? 'succeeded' : 'FAILED'})`,
    `  images     ${images.total} selected: ${images.copied} ${verb}, ` +
      `${images.upToDate} up to date, ${images.failed} failed`,
    `  gone       ${plural(summary.goneFromSource.count, 'tag')} gone ` +
      'from the source',
    `  blobs      ${blobs.uploaded} ${summary.dryRun ? 'to upload'
      : 'uploaded'}, ${blobs.mounted} ${summary.dryRun ? 'to mount'
      : 'mounted'}, ${blobs.skipped} skipped` +
      (blobs.foreign > 0 ? `, ${blobs.foreign} foreign left out` : ''),
    `  bytes      ${formatBytes(summary.bytesUploaded)} ` +
      (summary.dryRun ? 'would be uploaded' : 'uploaded'),
    `  time       ${formatDuration(summary.durationMs)}`,
  ];
  return lines;
}

/**
 * Why nothing was selected, when nothing was: a mistyped --packages and an
 * org the token cannot see both end in a successful run that copied
 * nothing, which a person should not mistake for a backup.
 */
function emptySelectionLines(command: RunCommand,
  counts: { packages: number; images: number }): string[] {
  const owner = command.input.org ?? command.input.user;
  if (counts.packages === 0 && command.input.packages !== undefined) {
    return [`Note: no container package of ${owner} matches --packages ` +
      `${command.input.packages}.`, ''];
  }
  if (counts.packages === 0) {
    return [`Note: ${owner} has no container package that the token can ` +
      'see.', ''];
  }
  if (counts.images === 0) {
    return ['Note: no tagged version was selected (untagged versions are ' +
      'copied only as part of an index that refers to them).', ''];
  }
  return [];
}

function dryRunLines(results: readonly ImageResult[]): string[] {
  const moving = results.filter((result) => result.status === 'copied');
  if (moving.length === 0) return ['Nothing would move.', ''];

  const lines = ['Would copy:'];
  for (const result of moving) {
    lines.push(`  ${imageName(result)}  ${formatBytes(result.bytesUploaded)}`
      + ` in ${plural(result.blobs.uploaded, 'blob')}` +
      (result.blobs.mounted ? `, ${result.blobs.mounted} mounted` : ''));
  }
  lines.push('');
  return lines;
}

function failureJson(result: ImageResult): Record<string, unknown> {
  return { package: result.package, digest: result.digest,
    tags: result.tags, error: result.error };
}

function planJson(result: ImageResult): Record<string, unknown> {
  return { package: result.package, digest: result.digest,
    tags: result.tags, bytes: result.bytesUploaded, blobs: result.blobs };
}

/** Images done of the plan and bytes uploaded, as a progress line. */
class RunProgress {
  runId?: string;
  readonly #line: ProgressLine;
  #total = 0;
  #copied = 0;
  #upToDate = 0;
  #failed = 0;
  #bytes = 0;

  constructor(line: ProgressLine) {
    this.#line = line;
  }

  planned(state: { runId: string; counts: { images: number } }): void {
    this.runId = state.runId;
    this.#total = state.counts.images;
    this.#draw();
  }

  imageDone(result: ImageResult): void {
    if (result.status === 'copied') this.#copied++;
    if (result.status === 'up-to-date') this.#upToDate++;
    if (result.status === 'failed') this.#failed++;
    this.#draw();
  }

  copyEvent(_image: unknown, event: CopyEvent): void {
    if (event.type !== 'blob-bytes') return;
    this.#bytes += event.bytes;
    this.#draw();
  }

  clear(): void {
    this.#line.clear();
  }

  #draw(): void {
    const done = this.#copied + this.#upToDate + this.#failed;
    this.#line.update(`images ${done}/${this.#total} ` +
      `(${this.#copied} copied, ${this.#upToDate} up to date, ` +
      `${this.#failed} failed)  ${formatBytes(this.#bytes)} uploaded`);
  }
}
