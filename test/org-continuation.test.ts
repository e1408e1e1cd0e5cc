// A copy that reaches its deadline (in Lambda: its timeout, minus a
// margin) stops, and the workflow continues it in a new invocation that
// skips what was copied, so an image of any size completes. Real
// registries, the real steps, the local runner; only the deadlines given
// to CopyImage are chosen by the test.

import { afterAll, afterEach, beforeAll, describe, expect, it, vi }
  from 'vitest';

import { synthesizeWorkflowDefinition } from '../infra/workflow.js';
import type { Registry } from '../functions/lib/registry/types.js';
import { staticCredentials } from '../functions/lib/registry/credentials.js';
import type { RunDeps } from '../functions/lib/run/deps.js';
import { copyStep } from '../functions/lib/run/copy-image.js';
import { Registries } from '../functions/lib/run/registries.js';
import type { RunSummary } from '../functions/lib/run/types.js';
import { LocalDigestStore } from '../functions/lib/store/local-digest-store.js';
import { LocalRunStore } from '../functions/lib/store/local-run-store.js';
import { localHandlers } from '../functions/local/handlers.js';
import { runWorkflowLocally } from '../functions/local/run-workflow.js';
import { DEFAULT_TOKEN, startGitHubApi, type GitHubApi }
  from './harness/github-api.js';
import {
  createLayout, pushFixture, requireBinaries, startRegistry, stopAll,
  type Fixture, type TestRegistry,
} from './harness/index.js';
import { expectSameImage, tempDir } from './copy-setup.js';

let api: GitHubApi;
let source: TestRegistry;
let target: TestRegistry;
let image: Fixture;

beforeAll(async () => {
  requireBinaries();
  const layout = await createLayout();
  [source, target] = await Promise.all([
    startRegistry({ name: 'source' }),
    startRegistry({ name: 'target' }),
  ]);
  image = await layout.image({ layerSizes: [300_000, 200_000, 100_000] });
  await pushFixture(image, source, 'acme/big:1');
  api = await startGitHubApi({ fixtures: { owner: 'acme', kind: 'org',
    packages: [{ name: 'big', versions: [
      { digest: image.digest, tags: ['1'] }] }] } });
});

afterAll(async () => {
  await api?.close();
  await stopAll();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('a copy stopped by its deadline', () => {
  it('is continued by the workflow until the image is complete',
    async () => {
      // Prepare: one blob at a time, and a clock that moves only when the
      // test says: the first invocation's deadline passes while its first
      // blob uploads, so it starts no other
      vi.useFakeTimers({ toFake: ['Date'] });
      const state = await tempDir('continuation-state');
      const registries = new Registries({
        credentials: staticCredentials({}) });
      let deadline: number | undefined;
      const slowTarget = (registry: Registry): Registry => ({
        endpoint: registry.endpoint,
        headManifest: (...args) => registry.headManifest(...args),
        getManifest: (...args) => registry.getManifest(...args),
        putManifest: (...args) => registry.putManifest(...args),
        headBlob: (...args) => registry.headBlob(...args),
        openBlob: (...args) => registry.openBlob(...args),
        referrers: (...args) => registry.referrers(...args),
        listTags: (...args) => registry.listTags(...args),
        pushBlob: async (...args) => {
          const outcome = await registry.pushBlob(...args);
          if (deadline !== undefined) vi.setSystemTime(deadline + 1);
          return outcome;
        },
      });
      const deps: RunDeps = {
        runs: new LocalRunStore({ dir: state }),
        digests: new LocalDigestStore({ dir: state }),
        github: { token: DEFAULT_TOKEN, api: api.url },
        source: { host: source.host, scheme: 'http' },
        registry: (endpoint) => endpoint.host === target.host
          ? slowTarget(registries.registry(endpoint))
          : registries.registry(endpoint),
        blobConcurrency: 1,
      };
      const handlers = localHandlers(deps);
      const calls: unknown[] = [];
      handlers.CopyImage = async (input) => {
        calls.push(input);
        deadline = calls.length === 1 ? Date.now() + 1000 : undefined;
        return copyStep(input, deps, { deadline });
      };

      // Act
      const report = await runWorkflowLocally({ org: 'acme',
        target: `http://${target.host}/mirror` }, {
        definition: synthesizeWorkflowDefinition(),
        handlers,
      });

      // Assess: two invocations, the second told what the first did
      expect(report.error).toBeUndefined();
      expect(calls).toHaveLength(2);
      expect(calls[1]).toMatchObject({ previous: { status: 'incomplete',
        progress: { blobs: { uploaded: 1 } } } });
      const summary = report.output as RunSummary;
      expect(summary.images).toMatchObject({ copied: 1, failed: 0 });
      expect(summary.blobs).toMatchObject({
        uploaded: image.blobs.length, skipped: 0 });
      expect(summary.bytesUploaded)
        .toBe(image.blobs.reduce((sum, blob) => sum + blob.size, 0));
      await expectSameImage(source, 'acme/big:1', target, 'mirror/big:1',
        image.digest);

      // no blob went twice
      const uploads = (await target.requests()).filter((r) =>
        r.method === 'PUT' && r.query.has('digest'));
      expect(uploads).toHaveLength(image.blobs.length);
    });
});
