// `npm start -- copy SRC DST`: copies one image between two registries.
//
// Reads its configuration (arguments and environment) once, builds the
// registry clients and the local digest store, runs the copy engine, and
// prints what it did. Everything else is in the core.

import { homedir } from 'node:os';
import { join } from 'node:path';
import { copyImage } from '../lib/copy/engine.js';
import type {
  CopyEvent, CopyLogger, CopyResult,
} from '../lib/copy/types.js';
import { InvalidInputError, redact } from '../lib/errors.js';
import { RegistryClient } from '../lib/registry/client.js';
import { registryCredentials } from '../lib/registry/credentials.js';
import {
  formatImageReference, parseImageReference,
} from '../lib/registry/reference.js';
import type { ImageReference } from '../lib/registry/types.js';
import { LocalDigestStore } from '../lib/store/local-digest-store.js';
import {
  ExitCode, ProgressLine, UsageError, abortOnInterrupt, errorJson,
  formatBytes, formatDuration, parseFlags, plural, printJson, processTerminal,
  readCommandLine, reportError, wholeNumberFlag, type Terminal,
} from './output.js';

export const HELP = `Usage: npm start -- copy SRC DST [OPTIONS]

Copies one image, with every platform, attestation and (by default)
referrer, from SRC to DST. Blobs the target has are skipped; blobs it holds
in another repository are mounted; tags are pushed last.

  SRC, DST   [http://]HOST[:PORT]/REPOSITORY followed by :TAG or @DIGEST
             (http:// marks a plain-HTTP registry; HTTPS otherwise).
             DST without a tag or digest takes SRC's tag.

Options:
  --json              print the result as one JSON object on stdout
  --state DIR         where blob locations are remembered between runs
                      (default $XDG_STATE_HOME/ghcr-backup, else
                      ~/.local/state/ghcr-backup)
  --concurrency N     blobs copied at once (default 4)
  --no-referrers      do not copy manifests that refer to the image
                      (signatures, SBOMs); --referrers is the default
  -h, --help          show this help

Credentials come from the Docker config ($DOCKER_CONFIG/config.json, else
~/.docker/config.json). For ghcr.io without an entry there, GITHUB_TOKEN
(and GITHUB_USERNAME, any name by default) are used.

Exit status: 0 when the image is in the target, 1 when the copy failed,
2 for a wrong command line.
`;

/** Everything the command needs, read once from arguments and env. */
export interface CopyCommand {
  source: ImageReference;
  /** The target repository; its tags are `tags`. */
  target: ImageReference;
  tags: string[];
  json: boolean;
  stateDir: string;
  concurrency: number;
  referrers: boolean;
  dockerConfigDir?: string;
  homeDir: string;
  githubToken?: string;
  githubUsername?: string;
  /** The environment Docker credential helpers run with. */
  helperEnv: NodeJS.ProcessEnv;
}

export async function main(args: string[], terminal: Terminal =
  processTerminal, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const read = readCommandLine(terminal, 'copy', HELP,
    () => readCommand(args, env));
  if ('exit' in read) return read.exit;
  const { command } = read;

  const interrupt = abortOnInterrupt();

  const store = new LocalDigestStore({ dir: command.stateDir });
  const progress = new CopyProgress(new ProgressLine(terminal));
  try {
    const result = await runCopy(command, store, interrupt.signal,
      (event) => progress.onEvent(event), warnings(terminal, progress));
    progress.clear();
    printResult(terminal, command, result);
    return ExitCode.ok;
  } catch (error) {
    progress.clear();
    if (command.json) {
      printJson(terminal, { status: 'failed', ...describe(command),
        error: errorJson(error) });
    }
    return reportError(terminal, error, 'copy');
  } finally {
    interrupt.dispose();
    await store.close();
  }
}

/** Parses the command line; throws UsageError naming what is wrong. */
export function readCommand(args: string[], env: NodeJS.ProcessEnv):
  CopyCommand | 'help' {
  const parsed = parseFlags({
    args,
    allowPositionals: true,
    allowNegative: true,
    options: {
      json: { type: 'boolean', default: false },
      state: { type: 'string' },
      concurrency: { type: 'string', default: '4' },
      referrers: { type: 'boolean', default: true },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });

  const { values, positionals } = parsed;
  if (values.help) return 'help';
  if (positionals.length !== 2) {
    throw new UsageError(
      `expected SRC and DST, got ${plural(positionals.length, 'argument')}`);
  }

  const source = parseReference(positionals[0]!, 'SRC', false);
  const target = parseReference(positionals[1]!, 'DST', true);
  const tags = targetTags(source, target);

  const concurrency = wholeNumberFlag('--concurrency', values.concurrency,
    1, 64);
  if (values.state === '') throw new UsageError('--state needs a directory');

  const homeDir = env.HOME || homedir();
  return {
    source,
    target,
    tags,
    json: values.json,
    stateDir: values.state ?? defaultStateDir(env, homeDir),
    concurrency,
    referrers: values.referrers,
    dockerConfigDir: env.DOCKER_CONFIG || undefined,
    homeDir,
    githubToken: env.GITHUB_TOKEN || undefined,
    githubUsername: env.GITHUB_USERNAME || undefined,
    helperEnv: env,
  };
}

/** `$XDG_STATE_HOME/ghcr-backup`, else `~/.local/state/ghcr-backup`. */
export function defaultStateDir(env: NodeJS.ProcessEnv, homeDir: string):
  string {
  const base = env.XDG_STATE_HOME || join(homeDir, '.local', 'state');
  return join(base, 'ghcr-backup');
}

function parseReference(text: string, side: 'SRC' | 'DST',
  allowBare: boolean): ImageReference {
  try {
    return parseImageReference(text, { allowBare });
  } catch (error) {
    const message = error instanceof InvalidInputError ? error.describe()
      : String(error);
    throw new UsageError(`${side}: ${message}`);
  }
}

// DST's tag, else SRC's tag, else none (a copy by digest)
function targetTags(source: ImageReference, target: ImageReference):
  string[] {
  if (target.digest) {
    if (target.tag || target.digest !== source.digest) {
      throw new UsageError('DST may name a digest only when SRC names the ' +
        'same digest; leave the tag and digest off DST to keep SRC\'s');
    }
    return [];
  }
  if (target.tag) return [target.tag];
  return source.tag ? [source.tag] : [];
}

function runCopy(command: CopyCommand, store: LocalDigestStore,
  signal: AbortSignal, onEvent: (event: CopyEvent) => void,
  logger: CopyLogger): Promise<CopyResult> {
  const credentials = registryCredentials({
    dockerConfigDir: command.dockerConfigDir,
    homeDir: command.homeDir,
    githubToken: command.githubToken,
    githubUsername: command.githubUsername,
    helperEnv: command.helperEnv,
  });
  const source = new RegistryClient({ endpoint: command.source.registry,
    credentials });
  const target = new RegistryClient({ endpoint: command.target.registry,
    credentials });

  // a source with both names the image by digest: the tag is a label
  const reference = command.source.digest ?? command.source.tag!;
  return copyImage({
    source: { registry: source, repository: command.source.repository,
      reference },
    target: { registry: target, repository: command.target.repository,
      tags: command.tags },
    store,
    concurrency: command.concurrency,
    referrers: command.referrers,
    signal,
    onEvent,
    logger,
  });
}

/**
 * The engine's fallbacks on stderr, each kind once: a copy that still
 * succeeds can have lost something the user chose, such as a `--state`
 * that cannot be read or written, which would otherwise cost every later
 * copy its mounts without a word.
 */
function warnings(terminal: Terminal, progress: CopyProgress): CopyLogger {
  const said = new Set<string>();
  return {
    debug: () => {},
    warn: (message, fields) => {
      if (said.has(message)) return;
      said.add(message);

      const error = typeof fields.error === 'string' ? `: ${fields.error}`
        : '';
      progress.clear();
      terminal.stderr.write(redact(`warning: ${message}${error}\n`));
    },
  };
}

function describe(command: CopyCommand): { source: string; target: string } {
  const target = { ...command.target, tag: command.tags[0],
    digest: command.tags.length ? undefined : command.source.digest };
  return { source: formatImageReference(command.source),
    target: formatImageReference(target) };
}

function printResult(terminal: Terminal, command: CopyCommand,
  result: CopyResult): void {
  const names = describe(command);
  if (command.json) {
    printJson(terminal, { ...names, tags: command.tags, ...result });
    return;
  }

  const time = formatDuration(result.durationMs);
  if (result.status === 'up-to-date') {
    terminal.stdout.write(`Up to date: ${names.target} is already ` +
      `${result.digest} (checked in ${time})\n`);
    return;
  }

  const { uploaded, mounted, skipped, foreign } = result.blobs;
  let blobs = `${uploaded} uploaded, ${mounted} mounted, ${skipped} skipped`;
  if (foreign > 0) {
    blobs += `; ${plural(foreign, 'foreign layer')} left out ` +
      '(non-distributable: pulled from their own URLs)';
  }

  terminal.stdout.write([
    `Copied ${names.source} to ${names.target}`,
    `  digest     ${result.digest}`,
    `  blobs      ${blobs}`,
    `  manifests  ${result.manifestsPushed} pushed`,
    `  bytes      ${formatBytes(result.bytesUploaded)} uploaded`,
    `  time       ${time}`,
    '',
  ].join('\n'));
}

/** Blobs and bytes done of those planned, as a progress line. */
class CopyProgress {
  readonly #line: ProgressLine;
  readonly #sent = new Map<string, number>();
  #blobs = 0;
  #blobsDone = 0;
  #bytes = 0;
  #bytesDone = 0;
  #mounted = 0;
  #skipped = 0;

  constructor(line: ProgressLine) {
    this.#line = line;
  }

  onEvent(event: CopyEvent): void {
    switch (event.type) {
      case 'plan':
        this.#blobs += event.blobs;
        this.#bytes += event.bytes;
        break;
      case 'blob-bytes':
        this.#sent.set(event.digest,
          (this.#sent.get(event.digest) ?? 0) + event.bytes);
        this.#bytesDone += event.bytes;
        break;
      case 'blob-done':
        if (event.action === 'foreign') return;
        this.#blobsDone++;
        if (event.action === 'mounted') this.#mounted++;
        if (event.action === 'skipped') this.#skipped++;

        // count the whole blob done, whatever its byte events said
        this.#bytesDone += event.size - (this.#sent.get(event.digest) ?? 0);
        this.#sent.delete(event.digest);
        break;
      default:
        return;
    }

    this.#line.update(`blobs ${this.#blobsDone}/${this.#blobs} ` +
      `(${this.#mounted} mounted, ${this.#skipped} skipped)  ` +
      `${formatBytes(this.#bytesDone)} of ${formatBytes(this.#bytes)}`);
  }

  clear(): void {
    this.#line.clear();
  }
}
