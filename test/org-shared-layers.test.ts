// Images copied at the same time that share layers: each shared blob is
// uploaded once, then mounted into the other repositories or skipped in
// the same one, though the digest store learns of a blob only after a
// manifest referencing it was pushed. Real registries, the run command's
// steps in-process, several images at once.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { synthesizeWorkflowDefinition } from '../infra/workflow.js';
import { staticCredentials } from '../functions/lib/registry/credentials.js';
import type { RunDeps } from '../functions/lib/run/deps.js';
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
  type FixtureDescriptor, type TestRegistry,
} from './harness/index.js';
import { tempDir } from './copy-setup.js';

let api: GitHubApi;
let source: TestRegistry;
let target: TestRegistry;
let base: FixtureDescriptor[];
let uniqueBlobs: number;

beforeAll(async () => {
  requireBinaries();
  const layout = await createLayout();
  [source, target] = await Promise.all([
    startRegistry({ name: 'source' }),
    startRegistry({ name: 'target' }),
  ]);

  // four images over one base: two packages, two versions each
  const shared = await layout.imagesSharingBase({
    baseLayerSizes: [262_144, 131_072] });
  base = shared.base;
  const [webA, workerA] = shared.images;
  const webB = await layout.image({ baseLayers: base, layerSizes: [2048] });
  const workerB = await layout.image({ baseLayers: base,
    layerSizes: [3072] });
  // one push at a time into a repository: two pushes of one blob at once
  // can race in the registry
  await Promise.all([
    pushFixture(webA, source, 'acme/web:a')
      .then(() => pushFixture(webB, source, 'acme/web:b')),
    pushFixture(workerA, source, 'acme/worker:a')
      .then(() => pushFixture(workerB, source, 'acme/worker:b')),
  ]);
  uniqueBlobs = new Set([webA, webB, workerA, workerB]
    .flatMap((image) => image.blobs.map((blob) => blob.digest))).size;

  api = await startGitHubApi({ fixtures: { owner: 'acme', kind: 'org',
    packages: [
      { name: 'web', versions: [{ digest: webA.digest, tags: ['a'] },
        { digest: webB.digest, tags: ['b'] }] },
      { name: 'worker', versions: [{ digest: workerA.digest, tags: ['a'] },
        { digest: workerB.digest, tags: ['b'] }] },
    ] } });
});

afterAll(async () => {
  await api?.close();
  await stopAll();
});

describe('images copied at once that share layers', () => {
  it('upload each shared blob once', async () => {
    // Prepare
    const state = await tempDir('shared-state');
    const registries = new Registries({
      credentials: staticCredentials({}) });
    const deps: RunDeps = {
      runs: new LocalRunStore({ dir: state }),
      digests: new LocalDigestStore({ dir: state }),
      github: { token: DEFAULT_TOKEN, api: api.url },
      source: { host: source.host, scheme: 'http' },
      registry: (endpoint) => registries.registry(endpoint),
      pageConcurrency: 1,
    };

    // Act: all four images at once
    const report = await runWorkflowLocally({ org: 'acme',
      target: `http://${target.host}/mirror`, concurrency: 4 }, {
      definition: synthesizeWorkflowDefinition(),
      handlers: localHandlers(deps),
    });

    // Assess
    expect(report.error).toBeUndefined();
    const summary = report.output as RunSummary;
    expect(summary.images.copied).toBe(4);
    expect(summary.blobs.uploaded).toBe(uniqueBlobs);

    const requests = await target.requests();
    for (const layer of base) {
      const uploads = requests.filter((r) => r.method === 'PUT' &&
        r.query.get('digest') === layer.digest);
      const mounts = requests.filter((r) => r.method === 'POST' &&
        r.query.get('mount') === layer.digest && r.status === 201);
      expect(uploads).toHaveLength(1);
      expect(mounts).toHaveLength(1);
    }
  });
});
