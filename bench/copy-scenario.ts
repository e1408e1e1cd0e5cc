// Scenario "copy": one large single-layer image from one local registry to
// another, three ways on the same registries: our engine, skopeo copy
// --all, and curl GET piped into a monolithic PUT (the raw limit: the
// receiving registry's write speed). Each copy goes into a fresh target
// repository, so nothing is skipped or mounted.

import { join } from 'node:path';

import {
  createLayout, pushFixture, skopeoEnv, startRegistry, type TestRegistry,
} from '../test/harness/index.js';
import { curlCopy } from './curl-copy.js';
import { cliEnv, parseJsonReport, runCli } from './engine.js';
import { expectSuccess, measure } from './measure.js';
import {
  median, MIB, mib, ratio, seconds, table, type Goal,
} from './report.js';
import {
  profileTable, summariseProfile, type ProfileSummary,
} from './profile.js';

export interface CopyScenarioOptions {
  sizeBytes: number;
  runs: number;
  /** A folder of the benchmark's own for state, homes and configs. */
  workDir: string;
  /** False measures the baselines only. */
  withOurs: boolean;
  /** After the measured runs, one more of ours under `--cpu-prof`,
   * its profile written here. */
  profileDir?: string;
  log: (line: string) => void;
}

export type Method = 'ours' | 'skopeo' | 'curl';

export interface Sample {
  run: number;
  ms: number;
  peakRssBytes?: number;
  /** What the engine itself reports (ours only): time inside the copy. */
  engineMs?: number;
  bytesUploaded?: number;
}

export interface MethodResult {
  samples: Sample[];
  medianMs: number;
  mibPerSecond: number;
  /** The largest peak RSS over the runs. */
  peakRssBytes?: number;
  /** Why it did not run, when it did not. */
  skipped?: string;
}


export interface CopyScenarioResult {
  sizeBytes: number;
  layerBytes: number;
  runs: number;
  methods: Record<Method, MethodResult>;
  oursOverSkopeo?: number;
  oursOverCurl?: number;
  /** Where a profiled extra run of ours spent its CPU. */
  profile?: ProfileSummary;
  goals: Goal[];
}

const SOURCE_REPOSITORY = 'bench/large';
const TAG = 'latest';

export async function runCopyScenario(
  options: CopyScenarioOptions,
): Promise<CopyScenarioResult> {
  const { log } = options;
  const registries: TestRegistry[] = [];
  const layout = await createLayout({ logSeed: false });

  try {
    // htpasswd on both sides: every method pays the same auth
    const source = await startRegistry({ auth: 'htpasswd', name: 'src' });
    registries.push(source);
    const target = await startRegistry({ auth: 'htpasswd', name: 'dst' });
    registries.push(target);

    log(`writing a ${mib(options.sizeBytes)} single-layer image`);
    const fixture = await layout.largeImage(options.sizeBytes,
      { ref: 'large' });
    const layerBytes = fixture.layers![0]!.size;
    await pushFixture(fixture, source, `${SOURCE_REPOSITORY}:${TAG}`);
    await layout.remove();

    const methods = await measureMethods(options, source, target,
      fixture.digest);
    const result = summarise(options, layerBytes, methods);
    if (options.profileDir && !result.methods.ours.skipped) {
      result.profile = await profileOurs(options, source, target,
        options.profileDir);
    }
    return result;
  } finally {
    await layout.remove();
    await Promise.allSettled(registries.map((r) => r.stop()));
  }
}

async function measureMethods(
  options: CopyScenarioOptions, source: TestRegistry, target: TestRegistry,
  digest: string,
): Promise<Record<Method, Sample[] | string>> {
  const samples: Record<Method, Sample[]> = { ours: [], skopeo: [], curl: [] };
  const order: Method[] = ['ours', 'skopeo', 'curl'];
  const oursMissing = options.withOurs
    ? undefined : 'not asked (--baselines-only)';

  for (let run = 1; run <= options.runs; run++) {
    // rotate who goes first: the first copy of a blob into the registry
    // also stores it; later ones find the file already there
    const rotated = [...order.slice((run - 1) % 3),
      ...order.slice(0, (run - 1) % 3)];
    for (const method of rotated) {
      if (method === 'ours' && oursMissing) continue;
      const repository = `bench/${method}-${run}`;
      const sample = await copyOnce(method, options, source, target,
        repository, run);
      await expectCopied(target, repository, digest, method);
      options.log(`  run ${run} ${method.padEnd(6)} ${seconds(sample.ms)}` +
        (sample.peakRssBytes ? `  peak RSS ${mib(sample.peakRssBytes)}` : ''));
      samples[method].push(sample);
    }
  }
  return { ...samples, ...(oursMissing ? { ours: oursMissing } : {}) };
}

/** One more copy by ours, profiled; not part of the timings. */
async function profileOurs(
  options: CopyScenarioOptions, source: TestRegistry, target: TestRegistry,
  profileDir: string,
): Promise<ProfileSummary> {
  options.log('  profiling one more copy of ours (--cpu-prof)');
  await oursCopy(options, source, target, 'bench/ours-profiled', 0,
    ['--cpu-prof', '--cpu-prof-dir', profileDir]);
  return summariseProfile(profileDir);
}

async function oursCopy(
  options: CopyScenarioOptions, source: TestRegistry, target: TestRegistry,
  repository: string, run: number, nodeArgs: readonly string[] = [],
): Promise<Sample> {
  const src = `${source.host}/${SOURCE_REPOSITORY}:${TAG}`;
  const dst = `${target.host}/${repository}:${TAG}`;
  const home = join(options.workDir,
    nodeArgs.length > 0 ? 'ours-profiled' : `ours-${run}`);

  // a fresh state folder: no memory of where blobs went before
  const env = await cliEnv(home, [
    { host: source.host, ...source.credentials },
    { host: target.host, ...target.credentials },
  ]);
  const result = await runCli(['copy', `http://${src}`, `http://${dst}`,
    '--json', '--state', join(home, 'state')], env, home, nodeArgs);
  expectSuccess(result, 'our copy');

  const report = parseJsonReport(result.stdout);
  return {
    run,
    ms: result.ms,
    peakRssBytes: result.peakRssBytes,
    engineMs: numberField(report, 'durationMs'),
    bytesUploaded: numberField(report, 'bytesUploaded'),
  };
}

async function copyOnce(
  method: Method, options: CopyScenarioOptions, source: TestRegistry,
  target: TestRegistry, repository: string, run: number,
): Promise<Sample> {
  const src = `${source.host}/${SOURCE_REPOSITORY}:${TAG}`;
  const dst = `${target.host}/${repository}:${TAG}`;
  const home = join(options.workDir, `${method}-${run}`);

  if (method === 'ours') {
    return oursCopy(options, source, target, repository, run);
  }

  if (method === 'skopeo') {
    const env = await skopeoEnv(home);
    const creds = (r: TestRegistry) =>
      `${r.credentials.username}:${r.credentials.password}`;
    const result = await measure('skopeo', ['--insecure-policy', 'copy',
      '--all', '--preserve-digests', '--quiet',
      '--src-tls-verify=false', '--src-creds', creds(source),
      '--dest-tls-verify=false', '--dest-creds', creds(target),
      `docker://${src}`, `docker://${dst}`], { env, scratchDir: home });
    expectSuccess(result, 'skopeo copy');
    return { run, ms: result.ms, peakRssBytes: result.peakRssBytes };
  }

  const copied = await curlCopy(
    { url: source.url, repository: SOURCE_REPOSITORY,
      ...source.credentials },
    { url: target.url, repository, ...target.credentials }, TAG);
  return { run, ms: copied.ms };
}

/** The target's tag must resolve to the source digest after each copy. */
async function expectCopied(
  target: TestRegistry, repository: string, digest: string, method: string,
): Promise<void> {
  const { username, password } = target.credentials;
  const response = await fetch(
    `${target.url}/v2/${repository}/manifests/${TAG}`, {
      method: 'HEAD',
      headers: {
        accept: 'application/vnd.oci.image.manifest.v1+json',
        authorization: `Basic ${Buffer.from(`${username}:${password}`)
          .toString('base64')}`,
      },
    });
  const found = response.headers.get('docker-content-digest');
  if (response.status !== 200 || found !== digest) {
    throw new Error(`${method} left ${target.host}/${repository}:${TAG} at ` +
      `${found ?? `HTTP ${response.status}`}, expected ${digest}`);
  }
}

function summarise(
  options: CopyScenarioOptions, layerBytes: number,
  raw: Record<Method, Sample[] | string>,
): CopyScenarioResult {
  const methods = {} as Record<Method, MethodResult>;
  for (const method of ['ours', 'skopeo', 'curl'] as const) {
    const samples = raw[method];
    if (typeof samples === 'string') {
      methods[method] = { samples: [], medianMs: Number.NaN,
        mibPerSecond: Number.NaN, skipped: samples };
      continue;
    }
    const medianMs = median(samples.map((s) => s.ms));
    const peaks = samples.flatMap((s) => s.peakRssBytes ?? []);
    methods[method] = {
      samples,
      medianMs,
      mibPerSecond: layerBytes / MIB / (medianMs / 1000),
      peakRssBytes: peaks.length > 0 ? Math.max(...peaks) : undefined,
    };
  }

  const ours = methods.ours;
  const oursOverSkopeo = ours.skipped
    ? undefined : ours.medianMs / methods.skopeo.medianMs;
  const oursOverCurl = ours.skipped
    ? undefined : ours.medianMs / methods.curl.medianMs;

  const goals: Goal[] = ours.skipped ? [] : [
    {
      scenario: 'copy',
      name: 'no slower than skopeo',
      target: '<= 1.00 x skopeo',
      measured: ratio(oursOverSkopeo),
      met: oursOverSkopeo! <= 1,
    },
    {
      scenario: 'copy',
      name: 'within 15% of curl',
      target: '<= 1.15 x curl',
      measured: ratio(oursOverCurl),
      met: oursOverCurl! <= 1.15,
    },
    {
      scenario: 'copy',
      name: 'peak RSS',
      target: '< 150 MB',
      measured: ours.peakRssBytes === undefined
        ? 'not measured' : `${(ours.peakRssBytes / 1e6).toFixed(0)} MB`,
      met: ours.peakRssBytes !== undefined && ours.peakRssBytes < 150e6,
    },
  ];

  return {
    sizeBytes: options.sizeBytes,
    layerBytes,
    runs: options.runs,
    methods,
    oursOverSkopeo,
    oursOverCurl,
    goals,
  };
}

export function copyScenarioTable(result: CopyScenarioResult): string {
  const { methods } = result;
  const row = (name: string, m: MethodResult, extra: string[]) => m.skipped
    ? [name, 'skipped', '-', '-', '-', '-', m.skipped]
    : [name, seconds(m.medianMs),
      m.samples.map((s) => (s.ms / 1000).toFixed(2)).join(' '),
      `${m.mibPerSecond.toFixed(0)} MiB/s`, ...extra];

  const oursEngine = median(methods.ours.samples.flatMap(
    (s) => s.engineMs ?? []));
  const profile = result.profile
    ? `\n\n${profileTable('our profiled copy', result.profile)}` : '';
  return table([
    ['method', 'median', 'runs (s)', 'speed', 'ours / this', 'peak RSS',
      'note'],
    row('ours (CLI process)', methods.ours,
      ['1.00 x', mib(methods.ours.peakRssBytes),
        Number.isFinite(oursEngine)
          ? `engine reports ${seconds(oursEngine)}` : '']),
    row('skopeo copy --all', methods.skopeo,
      [ratio(methods.ours.medianMs / methods.skopeo.medianMs),
        mib(methods.skopeo.peakRssBytes), '']),
    row('curl GET | curl PUT', methods.curl,
      [ratio(methods.ours.medianMs / methods.curl.medianMs), '-', '']),
  ]) + profile;
}

function numberField(
  report: Record<string, unknown>, key: string,
): number | undefined {
  const value = report[key];
  return typeof value === 'number' ? value : undefined;
}
