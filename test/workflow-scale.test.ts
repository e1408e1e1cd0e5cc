// The workflow over an org of 50,000 tags, end to end through the local
// runner: the real listing (our GitHub API server, 100 packages of 500
// versions, paginated), selection, plan pages in the local RunStore, page
// checks and the summary; the copy step and the target's answers are
// no-ops. It proves that the design holds at that size:
//
// - State payloads: states carry a run id, page numbers and indexes into a
//   page, never images. ListAndSelect's output lists 100 page numbers; a
//   page's CheckPage output lists at most 500 indexes (~2 KB); an image's
//   iteration outputs its index, so a page's collected Map result is ~2 KB
//   too. The runner fails any run
//   whose state input, output or Map result exceeds 256 KiB, and measures
//   the largest.
// - History: in the cloud each page is a child execution of the
//   DISTRIBUTED page Map, with its own 25,000-event history. A page of 500
//   images costs about 11 events per image (Map iteration start and end,
//   the Task's five, the Choice's two, the Succeed's two) plus ~10 for
//   CheckPage and the inner Map: ~5,500 events, leaving room for every
//   image to need a continuation (~7 more each) or a retry. The parent
//   records ListAndSelect, the Map run, Summarize and the outcome: a
//   handful of events whatever the number of pages. The runner counts
//   events per execution the way Step Functions records them; the test
//   checks both stay far below the limit.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { synthesizeWorkflowDefinition } from '../infra/workflow.js';
import type { Registry } from '../functions/lib/registry/types.js';
import type { RunDeps } from '../functions/lib/run/deps.js';
import { checkImageTask } from '../functions/lib/run/copy-image.js';
import type { RunSummary } from '../functions/lib/run/types.js';
import { LocalDigestStore } from '../functions/lib/store/local-digest-store.js';
import { LocalRunStore } from '../functions/lib/store/local-run-store.js';
import { PLAN_PAGE_SIZE, type PlannedImage }
  from '../functions/lib/store/types.js';
import { localHandlers } from '../functions/local/handlers.js';
import {
  HISTORY_EVENT_LIMIT, STATE_PAYLOAD_LIMIT, runWorkflowLocally,
} from '../functions/local/run-workflow.js';
import {
  DEFAULT_TOKEN, startGitHubApi, type FixturePackage, type GitHubApi,
} from './harness/github-api.js';
import { makeTempDir, removeDir } from './harness/index.js';

const PACKAGES = 100;
const VERSIONS = 500;
const TAGS = PACKAGES * VERSIONS;

let api: GitHubApi;
let stateDir: string;

beforeAll(async () => {
  // non-semver tags: the policy keeps every one
  const packages: FixturePackage[] = [];
  for (let p = 0; p < PACKAGES; p++) {
    const versions = [];
    for (let v = 0; v < VERSIONS; v++) {
      const hex = (p * VERSIONS + v).toString(16).padStart(64, '0');
      versions.push({ digest: `sha256:${hex}`,
        tags: [`build-${String(v).padStart(4, '0')}`] });
    }
    packages.push({ name: `service-${p}`, versions });
  }
  api = await startGitHubApi({
    fixtures: { owner: 'big', kind: 'org', packages } });
  stateDir = await makeTempDir('scale-state');
});

afterAll(async () => {
  await api?.close();
  if (stateDir) await removeDir(stateDir);
});

/** A target that has nothing: every image needs a copy. */
const emptyTarget: Registry = new Proxy({} as Registry, {
  get: (_, name) => name === 'endpoint'
    ? { host: 'target.example.com', scheme: 'https' }
    : name === 'headManifest' ? async () => undefined
      : () => {
        throw new Error(`the scale test's target has no ${String(name)}`);
      },
});

describe('the workflow over 50,000 tags', () => {
  it('keeps every state under 256 KiB and each history far below ' +
    '25,000 events', async () => {
    // Prepare
    const runs = new LocalRunStore({ dir: stateDir });
    const deps: RunDeps = {
      runs,
      digests: new LocalDigestStore({ dir: stateDir }),
      github: { token: DEFAULT_TOKEN, api: api.url },
      source: { host: 'ghcr.io', scheme: 'https' },
      registry: () => emptyTarget,
      pageConcurrency: 4,
    };
    const handlers = localHandlers(deps);
    let copies = 0;
    const pages = new Map<string, Promise<PlannedImage[]>>();

    // the copy step is a no-op that records the image as copied
    handlers.CopyImage = async (input) => {
      const task = checkImageTask(input);
      const key = `${task.runId}#${task.page}`;
      if (!pages.has(key)) {
        pages.set(key, runs.getPlanPage(task.runId, task.page));
      }
      const image = (await pages.get(key)!)[task.index]!;
      await runs.putResult(task.runId, {
        package: image.package, digest: image.digest, tags: image.tags,
        status: 'copied',
        blobs: { uploaded: 1, mounted: 0, skipped: 0, foreign: 0 },
        bytesUploaded: 1, durationMs: 0,
      });
      copies++;
      return { status: 'copied' };
    };

    // Act
    const report = await runWorkflowLocally({ org: 'big',
      target: 'target.example.com/backup', concurrency: 16 }, {
      definition: synthesizeWorkflowDefinition(),
      handlers,
    });

    // Assess
    expect(report.error).toBeUndefined();
    expect(report.status).toBe('succeeded');
    const summary = report.output as RunSummary;
    expect(summary.images).toEqual({ total: TAGS, copied: TAGS,
      upToDate: 0, failed: 0 });
    expect(copies).toBe(TAGS);

    // the largest state is a CheckPage output: 500 indexes, about 2 KB
    expect(report.largestPayload.bytes).toBeLessThan(8 * 1024);
    expect(report.largestPayload.bytes).toBeLessThan(STATE_PAYLOAD_LIMIT);
    expect(report.history.children).toBe(TAGS / PLAN_PAGE_SIZE);
    expect(report.history.largestChild)
      .toBeLessThan(HISTORY_EVENT_LIMIT / 4);
    expect(report.history.parent).toBeLessThan(100);
  }, 600_000);
});
