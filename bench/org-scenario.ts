// Scenario "org": a GitHub organisation of many packages (multi-platform
// images over shared base layers, a few tags each) served by our GitHub API
// test server and a GHCR-like token-auth registry, backed up by our `run`
// and by `skopeo sync` over the same images, into one target registry
// under two prefixes. Each tool runs twice: a first run into an empty
// prefix, then a rerun with nothing to do. What each one uploaded is
// counted from the target registry's own request log.

import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import {
  DEFAULT_TOKEN, startGitHubApi, type FixturePackage, type GitHubApi,
} from '../test/harness/github-api.js';
import {
  createLayout, pushFixtureRaw, pushRaw, skopeoEnv, startRegistry,
  type Fixture, type FixtureDescriptor, type OciLayout,
  type RegistryRequest, type TestRegistry,
} from '../test/harness/index.js';
import { cliEnv, parseJsonReport, runCli } from './engine.js';
import { expectSuccess, measure } from './measure.js';
import { mib, ratio, seconds, table, type Goal } from './report.js';
import {
  profileTable, summariseProfile, type ProfileSummary,
} from './profile.js';

export interface OrgScenarioOptions {
  packages: number;
  workDir: string;
  /** False measures skopeo only. */
  withOurs: boolean;
  /** After the measured runs, a first run and a rerun of ours under
   * `--cpu-prof`, their profiles written here. */
  profileDir?: string;
  log: (line: string) => void;
}

export interface Traffic {
  /** Blob uploads completed (a PUT with `?digest=` answered 201). */
  blobsUploaded: number;
  /** Sum of the sizes of the blobs uploaded, counting repeats. */
  bytesUploaded: number;
  /** Distinct digests among the uploads. */
  distinctBlobsUploaded: number;
  /** Blobs uploaded more than once, and how often. */
  repeatedUploads: { digest: string; size: number; times: number }[];
  blobsMounted: number;
  manifestsPushed: number;
  /** Every request the target received in this phase. */
  targetRequests: number;
  /** Every request the source registry received in this phase. */
  sourceRequests: number;
}

export interface RunSample {
  ms: number;
  peakRssBytes?: number;
  traffic: Traffic;
  /** Our `--json` report, as printed (ours only). */
  report?: Record<string, unknown>;
  profile?: ProfileSummary;
}

export interface ToolResult {
  first?: RunSample;
  rerun?: RunSample;
  skipped?: string;
}

export interface OrgScenarioResult {
  packages: number;
  /** Images selected: every package's tags (each tag is one image). */
  tags: number;
  /** Distinct manifests and indexes behind those tags. */
  manifests: number;
  /** Distinct config and layer blobs, and their total size. */
  uniqueBlobs: number;
  uniqueBytes: number;
  ours: ToolResult;
  skopeo: ToolResult;
  firstRunRatio?: number;
  rerunRatio?: number;
  /** Profiled runs of ours (with --profile), not part of the timings. */
  profiled?: ToolResult;
  goals: Goal[];
}

const ORG = 'bench-org';
const GITHUB_USERNAME = 'bench';
const BASE_LAYER_SIZES = [6 << 20, 3 << 20];
const APP_LAYER_SIZES = [2 << 20];
const PLATFORMS = [
  { architecture: 'amd64', os: 'linux' },
  { architecture: 'arm64', os: 'linux', variant: 'v8' },
];

/** Tags per version, newest version first: every one of them is kept by
 * the selection policy (semver lines 1.0 and 1.1, and a non-semver tag). */
const VERSION_TAGS = [['v1.1.0', 'latest'], ['v1.0.0']];

interface OrgFixture {
  packages: FixturePackage[];
  /** Repository (`ORG/NAME`) -> tags, for skopeo's YAML. */
  images: Map<string, string[]>;
  blobSizes: Map<string, number>;
  manifests: number;
}

export async function runOrgScenario(
  options: OrgScenarioOptions,
): Promise<OrgScenarioResult> {
  const { log } = options;
  const stops: (() => Promise<void>)[] = [];

  try {
    // GHCR-like: token auth, GITHUB_TOKEN as the password
    const source = await startRegistry({
      auth: 'token', name: 'org-src',
      users: [{ username: GITHUB_USERNAME, password: DEFAULT_TOKEN }],
    });
    stops.push(() => source.stop());
    const target = await startRegistry({ auth: 'htpasswd', name: 'org-dst' });
    stops.push(() => target.stop());

    log(`writing and pushing ${options.packages} packages`);
    const layout = await createLayout({ logSeed: false });
    stops.push(() => layout.remove());
    const fixture = await buildOrg(layout, source, options.packages);
    await layout.remove();

    const api = await startGitHubApi({ fixtures: {
      owner: ORG, kind: 'org', packages: fixture.packages,
    } });
    stops.push(() => api.close());

    const ours = !options.withOurs
      ? { skipped: 'not asked (--baselines-only)' }
      : await runOurs(options, api, source, target, fixture,
        { prefix: 'ours', home: join(options.workDir, 'ours') });
    const skopeo = await runSkopeo(options, source, target, fixture);
    const result = summarise(options, fixture, ours, skopeo);

    // profiled runs of their own, into a fresh prefix, so the profiler's
    // cost stays out of the timings above
    if (options.profileDir && !ours.skipped) {
      options.log('  profiling a first run and a rerun of ours ' +
        '(--cpu-prof)');
      result.profiled = await runOurs(options, api, source, target, fixture,
        { prefix: 'profiled', home: join(options.workDir, 'profiled'),
          profileDir: options.profileDir });
    }
    return result;
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }
}

/**
 * Pushes every package: two versions, each a two-platform index with
 * attestations over the shared base layers, and lists them for the API as
 * GHCR does (tagged indexes, and their children as untagged versions).
 */
async function buildOrg(
  layout: OciLayout, source: TestRegistry, count: number,
): Promise<OrgFixture> {
  const base: FixtureDescriptor[] = [];
  for (const size of BASE_LAYER_SIZES) {
    const { diffId: _, ...layer } = await layout.addRandomLayer(size);
    base.push(layer);
  }

  const packages: FixturePackage[] = [];
  const images = new Map<string, string[]>();
  const blobSizes = new Map<string, number>();
  let manifests = 0;
  for (let n = 1; n <= count; n++) {
    const name = `app-${String(n).padStart(2, '0')}`;
    const repository = `${ORG}/${name}`;
    const versions: FixturePackage['versions'] = [];

    for (const tags of VERSION_TAGS) {
      const index: Fixture = await layout.multiPlatformIndex({
        baseLayers: base, layerSizes: APP_LAYER_SIZES, platforms: PLATFORMS,
        tagged: false,
      });
      await pushFixtureRaw(index, source, repository, tags[0]!);
      for (const tag of tags.slice(1)) {
        await pushRaw(source, repository, [], [{
          reference: tag, mediaType: index.mediaType,
          bytes: await readBlob(layout, index.digest),
        }]);
      }

      versions.push({ digest: index.digest, tags: [...tags] });
      for (const child of index.manifests.slice(1)) {
        versions.push({ digest: child.digest, tags: [] });
      }
      for (const blob of index.blobs) blobSizes.set(blob.digest, blob.size);
      manifests += index.manifests.length;
    }
    packages.push({ name, versions });
    images.set(repository, VERSION_TAGS.flat());
  }
  return { packages, images, blobSizes, manifests };
}

function readBlob(layout: OciLayout, digest: string): Promise<Buffer> {
  return readFile(layout.blobPath(digest));
}

interface OursSetup {
  /** Target path the run writes under: `ours` lands at TARGET/ours/NAME. */
  prefix: string;
  home: string;
  /** Profile each phase with --cpu-prof into DIR/first and DIR/rerun. */
  profileDir?: string;
}

async function runOurs(
  options: OrgScenarioOptions, api: GitHubApi, source: TestRegistry,
  target: TestRegistry, fixture: OrgFixture, setup: OursSetup,
): Promise<ToolResult> {
  const { home, prefix, profileDir } = setup;
  const env = await cliEnv(home,
    [{ host: target.host, ...target.credentials }],
    { GITHUB_TOKEN: DEFAULT_TOKEN, GITHUB_USERNAME });
  const args = ['run', '--org', ORG,
    '--target', `http://${target.host}/${prefix}`,
    '--github-api', api.url,
    '--source-registry', `http://${source.host}`,
    '--state', join(home, 'state'), '--json'];

  const phase = async (label: 'first' | 'rerun'): Promise<RunSample> => {
    await source.resetRequests();
    await target.resetRequests();
    const nodeArgs = profileDir
      ? ['--cpu-prof', '--cpu-prof-dir', join(profileDir, label)] : [];
    const result = await runCli(args, env, home, nodeArgs);
    expectSuccess(result, `our run (${label})`);
    const traffic = await trafficOf(source, target, `/v2/${prefix}/`,
      fixture);
    options.log(`  ${prefix.padEnd(6)} ${label.padEnd(6)} ` +
      `${seconds(result.ms)}  uploaded ${mib(traffic.bytesUploaded)}`);
    return {
      ms: result.ms, peakRssBytes: result.peakRssBytes, traffic,
      report: parseJsonReport(result.stdout),
      ...(profileDir ? { profile: await summariseProfile(
        join(profileDir, label)) } : {}),
    };
  };
  return { first: await phase('first'), rerun: await phase('rerun') };
}

async function runSkopeo(
  options: OrgScenarioOptions, source: TestRegistry, target: TestRegistry,
  fixture: OrgFixture,
): Promise<ToolResult> {
  const home = join(options.workDir, 'skopeo');
  const env = await skopeoEnv(home);

  // the same selected images, listed for skopeo's YAML source
  const yamlPath = join(home, 'images.yaml');
  const images = [...fixture.images].map(([repository, tags]) =>
    `    ${repository}: [${tags.map((t) => `"${t}"`).join(', ')}]`);
  await writeFile(yamlPath, [
    `${source.host}:`,
    '  tls-verify: false',
    '  credentials:',
    `    username: "${GITHUB_USERNAME}"`,
    `    password: "${DEFAULT_TOKEN}"`,
    '  images:',
    ...images,
    '',
  ].join('\n'), { mode: 0o600 });

  const { username, password } = target.credentials;
  const args = ['--insecure-policy', 'sync', '--all', '--preserve-digests',
    '--src', 'yaml', '--dest', 'docker',
    '--dest-tls-verify=false', '--dest-creds', `${username}:${password}`,
    yamlPath, `${target.host}/skopeo`];

  const phase = async (label: string): Promise<RunSample> => {
    await source.resetRequests();
    await target.resetRequests();
    const result = await measure('skopeo', args,
      { env, scratchDir: home });
    expectSuccess(result, `skopeo sync (${label})`);
    const traffic = await trafficOf(source, target, '/v2/skopeo/', fixture);
    options.log(`  skopeo ${label.padEnd(6)} ${seconds(result.ms)}  ` +
      `uploaded ${mib(traffic.bytesUploaded)}`);
    return { ms: result.ms, peakRssBytes: result.peakRssBytes, traffic };
  };
  return { first: await phase('first'), rerun: await phase('rerun') };
}

/** What the registries received since the last reset, under `prefix`. */
async function trafficOf(
  source: TestRegistry, target: TestRegistry, prefix: string,
  fixture: OrgFixture,
): Promise<Traffic> {
  const received = (await target.requests())
    .filter((r) => r.path.startsWith(prefix));
  const uploads = received.filter((r) => r.method === 'PUT' &&
    r.status === 201 && r.path.includes('/blobs/uploads/') &&
    r.query.has('digest'));

  let bytesUploaded = 0;
  const times = new Map<string, number>();
  for (const upload of uploads) {
    const digest = upload.query.get('digest')!;
    const size = fixture.blobSizes.get(digest);
    if (size === undefined) {
      throw new Error(`${upload.uri}: a blob the fixture does not have`);
    }
    bytesUploaded += size;
    times.set(digest, (times.get(digest) ?? 0) + 1);
  }

  return {
    blobsUploaded: uploads.length,
    bytesUploaded,
    distinctBlobsUploaded: times.size,
    repeatedUploads: [...times].filter(([, n]) => n > 1)
      .map(([digest, n]) => ({
        digest, size: fixture.blobSizes.get(digest)!, times: n,
      })),
    blobsMounted: received.filter(isMount).length,
    manifestsPushed: received.filter((r) => r.method === 'PUT' &&
      r.status === 201 && r.path.includes('/manifests/')).length,
    targetRequests: received.length,
    sourceRequests: (await source.requests()).length,
  };
}

function isMount(request: RegistryRequest): boolean {
  return request.method === 'POST' && request.status === 201 &&
    request.query.has('mount');
}

function summarise(
  options: OrgScenarioOptions, fixture: OrgFixture, ours: ToolResult,
  skopeo: ToolResult,
): OrgScenarioResult {
  const uniqueBytes = [...fixture.blobSizes.values()]
    .reduce((a, b) => a + b, 0);
  const ratioOf = (phase: 'first' | 'rerun') => ours[phase] && skopeo[phase]
    ? ours[phase].ms / skopeo[phase].ms : undefined;
  const firstRunRatio = ratioOf('first');
  const rerunRatio = ratioOf('rerun');

  const goals: Goal[] = [];
  if (ours.first && ours.rerun) {
    const uploaded = ours.first.traffic.bytesUploaded +
      ours.rerun.traffic.bytesUploaded;
    goals.push(
      {
        scenario: 'org',
        name: 'first run vs skopeo sync',
        target: '<= 0.70 x skopeo',
        measured: ratio(firstRunRatio),
        met: firstRunRatio! <= 0.7,
      },
      {
        scenario: 'org',
        name: 'no-op rerun vs skopeo sync',
        target: '<= 0.10 x skopeo',
        measured: ratio(rerunRatio),
        met: rerunRatio! <= 0.1,
      },
      {
        scenario: 'org',
        name: 'bytes uploaded (both runs)',
        target: `== unique ${uniqueBytes} B`,
        measured: `${uploaded} B`,
        met: uploaded === uniqueBytes,
      },
    );
  }

  return {
    packages: options.packages,
    tags: [...fixture.images.values()].flat().length,
    manifests: fixture.manifests,
    uniqueBlobs: fixture.blobSizes.size,
    uniqueBytes,
    ours,
    skopeo,
    firstRunRatio,
    rerunRatio,
    goals,
  };
}

export function orgScenarioTable(result: OrgScenarioResult): string {
  const row = (name: string, tool: ToolResult,
    phase: 'first' | 'rerun'): string[] => {
    const sample = tool[phase];
    if (!sample) return [`${name} ${phase}`, 'skipped', '-', '-', '-', '-',
      '-', tool.skipped ?? ''];
    const t = sample.traffic;
    return [`${name} ${phase}`, seconds(sample.ms), mib(t.bytesUploaded),
      `${t.blobsUploaded} (${t.distinctBlobsUploaded})`,
      String(t.blobsMounted), String(t.manifestsPushed),
      String(t.sourceRequests), mib(sample.peakRssBytes)];
  };

  const header = `${result.packages} packages, ${result.tags} tags, ` +
    `${result.manifests} manifests, ${result.uniqueBlobs} unique blobs ` +
    `(${mib(result.uniqueBytes)})`;
  return `${header}\n\n${table([
    ['run', 'time', 'uploaded', 'blob PUTs (distinct)', 'mounts',
      'manifest PUTs', 'source requests', 'peak RSS'],
    row('ours', result.ours, 'first'),
    row('skopeo sync', result.skopeo, 'first'),
    row('ours', result.ours, 'rerun'),
    row('skopeo sync', result.skopeo, 'rerun'),
  ])}\n\nours / skopeo: first run ${ratio(result.firstRunRatio)}, ` +
    `no-op rerun ${ratio(result.rerunRatio)}${repeats(result)}` +
    profiles(result.profiled);
}

/** Blobs a tool uploaded more than once: bytes beyond the unique ones. */
function repeats(result: OrgScenarioResult): string {
  let text = '';
  for (const [name, tool] of [['ours', result.ours],
    ['skopeo sync', result.skopeo]] as const) {
    for (const phase of ['first', 'rerun'] as const) {
      for (const r of tool[phase]?.traffic.repeatedUploads ?? []) {
        text += `\n  ${name} ${phase}: ${r.digest.slice(0, 19)}… ` +
          `(${mib(r.size)}) uploaded ${r.times} times`;
      }
    }
  }
  return text ? `\nuploaded more than once:${text}` : '';
}

function profiles(profiled: ToolResult | undefined): string {
  let text = '';
  for (const phase of ['first', 'rerun'] as const) {
    const sample = profiled?.[phase];
    if (!sample?.profile) continue;
    text += `\n\n${profileTable(`our profiled ${phase} run`,
      sample.profile)}`;
  }
  return text;
}
