// `npm run bench`: how our engine and org run compare with skopeo and with
// the raw limit of the registries, on local registries started here.
//
//   npm run bench                  both scenarios, 3 runs of the copy
//   npm run bench -- --quick       1 run of each
//   npm run bench -- --size 128    a 128 MiB layer instead of 512 MiB
//   npm run bench -- --only copy   one scenario (copy or org)
//   npm run bench -- --baselines-only   skopeo and curl, not our engine
//   npm run bench -- --profile     and one more copy of ours, CPU-profiled
//
// Prints a table per scenario and the goals, writes the same as JSON to
// bench/results/latest.json, and exits 0 even when a goal is missed (the
// word MISSED says so): a benchmark measures, it does not gate.

import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  findBinary, requireBinaries, stopAll,
} from '../test/harness/index.js';
import {
  copyScenarioTable, runCopyScenario, type CopyScenarioResult,
} from './copy-scenario.js';
import { PROJECT_DIR } from './engine.js';
import { killMeasured } from './measure.js';
import {
  orgScenarioTable, runOrgScenario, type OrgScenarioResult,
} from './org-scenario.js';
import { goalsTable, MIB, type Goal } from './report.js';

interface Options {
  runs: number;
  sizeBytes: number;
  packages: number;
  only?: 'copy' | 'org';
  /** Measure skopeo and curl only (checks a machine, or a baseline). */
  baselinesOnly: boolean;
  /** One more copy of ours under --cpu-prof, summarised. */
  profile: boolean;
}

const USAGE = `usage: npm run bench -- [--quick] [--runs N] [--size MIB]
                        [--packages N] [--only copy|org] [--baselines-only]
                        [--profile]`;

function parseOptions(argv: readonly string[]): Options {
  const options: Options = {
    runs: 3, sizeBytes: 512 * MIB, packages: 20, baselinesOnly: false,
    profile: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const next = argv[++i];
      if (next === undefined) throw new UsageError(`${arg} needs a value`);
      return next;
    };
    const count = (min: number) => {
      const text = value();
      const n = Number(text);
      if (!Number.isInteger(n) || n < min) {
        throw new UsageError(`${arg} takes a whole number >= ${min}, ` +
          `not ${text}`);
      }
      return n;
    };

    if (arg === '--quick') options.runs = 1;
    else if (arg === '--baselines-only') options.baselinesOnly = true;
    else if (arg === '--profile') options.profile = true;
    else if (arg === '--runs') options.runs = count(1);
    else if (arg === '--size') options.sizeBytes = count(1) * MIB;
    else if (arg === '--packages') options.packages = count(2);
    else if (arg === '--only') {
      const only = value();
      if (only !== 'copy' && only !== 'org') {
        throw new UsageError(`--only takes copy or org, not ${only}`);
      }
      options.only = only;
    } else if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else {
      throw new UsageError(`unknown option ${arg}`);
    }
  }
  return options;
}

class UsageError extends Error {}

/** Set on SIGINT or SIGTERM: what fails after it is no news. */
let interrupted = false;

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  requireBinaries(['docker-registry', 'skopeo', 'htpasswd', 'openssl']);
  if (!findBinary('curl')) {
    throw new Error('the benchmark needs curl for its raw baseline: ' +
      'sudo apt-get install -y curl');
  }
  const workDir = await mkdtemp(join(tmpdir(), 'ghcr-backup-bench-'));

  // an interrupted benchmark still stops its registries and removes its
  // folders; the listener stays until then, so the harness's own handler
  // does not end the process first
  const interrupt = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    killMeasured();
    void (async () => {
      await stopAll();
      await rm(workDir, { recursive: true, force: true });
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    })();
  };
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);

  const log = (line: string) => console.log(line);
  const started = Date.now();
  const loadBefore = loadavg()[0]!;
  if (loadBefore > cpus().length) {
    log(`warning: load average ${loadBefore.toFixed(1)} on ` +
      `${cpus().length} cores: other work will skew the times`);
  }
  const profileDir = options.profile
    ? join(PROJECT_DIR, 'bench', 'results', 'profiles',
      new Date(started).toISOString().replace(/[:.]/g, '-'))
    : undefined;
  let copy: CopyScenarioResult | undefined;
  let org: OrgScenarioResult | undefined;
  try {
    if (options.only !== 'org') {
      log(`\n== copy: one ${options.sizeBytes / MIB} MiB layer, ` +
        `${options.runs} run(s) each ==`);
      copy = await runCopyScenario({
        sizeBytes: options.sizeBytes, runs: options.runs,
        workDir: join(workDir, 'copy'), log,
        withOurs: !options.baselinesOnly,
        profileDir: profileDir && join(profileDir, 'copy'),
      });
      log(`\n${copyScenarioTable(copy)}`);
    }
    if (options.only !== 'copy') {
      log(`\n== org: ${options.packages} packages against skopeo sync ==`);
      org = await runOrgScenario({
        packages: options.packages, workDir: join(workDir, 'org'), log,
        withOurs: !options.baselinesOnly,
        profileDir: profileDir && join(profileDir, 'org'),
      });
      log(`\n${orgScenarioTable(org)}`);
    }
  } finally {
    await stopAll();
    await rm(workDir, { recursive: true, force: true });
  }

  const goals: Goal[] = [...copy?.goals ?? [], ...org?.goals ?? []];
  const missed = goals.filter((g) => !g.met);
  log(`\n${goalsTable(goals)}`);
  log(missed.length === 0
    ? `\nall ${goals.length} goals met`
    : `\nMISSED ${missed.length} of ${goals.length} goals: ` +
      missed.map((g) => `${g.scenario}: ${g.name}`).join('; '));

  const resultsDir = join(PROJECT_DIR, 'bench', 'results');
  await mkdir(resultsDir, { recursive: true });
  const path = join(resultsDir, 'latest.json');
  await writeFile(path, `${JSON.stringify({
    date: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    machine: machine(),
    loadAverage: { before: loadBefore, after: loadavg()[0] },
    options,
    copy,
    org,
    goals,
    missed: missed.length,
  }, null, 2)}\n`);
  log(`results: ${path}`);
}

function machine(): Record<string, unknown> {
  const version = (command: string, args: string[]) => {
    try {
      return execFileSync(command, args, { encoding: 'utf8' }).trim()
        .split('\n')[0];
    } catch {
      return undefined;
    }
  };
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    node: process.version,
    skopeo: version('skopeo', ['--version']),
    curl: version('curl', ['--version']),
  };
}

main().catch((error: unknown) => {
  if (interrupted) return;
  if (error instanceof UsageError) {
    console.error(`${error.message}\n${USAGE}`);
    process.exit(2);
  }
  console.error(error instanceof Error ? error.stack : error);
  process.exit(1);
});
