// The build behind `npm start` (scripts/build.mjs): the bundled CLI runs,
// carries the definition a fresh synthesis gives, leaves aws-cdk-lib out,
// and is built again only when a file it came from changes.

import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { synthesizeWorkflowDefinition } from '../infra/workflow.js';
import { makeTempDir, removeDir, runCommand } from './harness/index.js';

const BUILD = resolve('scripts', 'build.mjs');

interface BuildInfo { builtAt: number; inputs: string[] }

async function readJson<T>(path: string): Promise<T> {
  return JSON.parse(await readFile(path, 'utf8')) as T;
}

describe('scripts/build.mjs', () => {
  let outdir: string;

  beforeAll(async () => {
    outdir = await makeTempDir('build');
    await runCommand(process.execPath, [BUILD, '--outdir', outdir]);
  });

  afterAll(async () => {
    await removeDir(outdir);
  });

  it('builds a CLI that runs with Node alone', async () => {
    // Act
    const { stdout } = await runCommand(process.execPath,
      [join(outdir, 'cli', 'main.js'), 'run', '--help']);

    // Assess
    expect(stdout.toString()).toMatch(/^Usage: npm start -- run /);
  });

  it('writes the workflow definition that a fresh synthesis gives',
    async () => {
      // Act
      const built = await readJson<{ definition: unknown }>(
        join(outdir, 'workflow-definition.json'));

      // Assess
      expect(built.definition).toEqual(synthesizeWorkflowDefinition());
    });

  it('leaves aws-cdk-lib out of the built CLI', async () => {
    // Prepare
    const dir = join(outdir, 'cli');
    const files = (await readdir(dir, { recursive: true }))
      .filter((file) => file.endsWith('.js'));

    // Act
    const naming = [];
    for (const file of files) {
      const text = await readFile(join(dir, file), 'utf8');
      if (text.includes('aws-cdk-lib')) naming.push(file);
    }

    // Assess
    expect(files).toContain('main.js');
    expect(naming).toEqual([]);
  });

  it('builds again only when a file it was built from is newer',
    async () => {
      // Prepare
      const infoPath = join(outdir, 'build-info.json');
      const before = await readJson<BuildInfo>(infoPath);

      // Act
      await runCommand(process.execPath, [BUILD, '--outdir', outdir]);
      const unchanged = await readJson<BuildInfo>(infoPath);
      // as if every input had changed since
      await writeFile(infoPath, JSON.stringify({ ...before, builtAt: 0 }));
      await runCommand(process.execPath, [BUILD, '--outdir', outdir]);
      const rebuilt = await readJson<BuildInfo>(infoPath);

      // Assess
      expect(before.inputs).toContain(resolve('functions', 'cli', 'main.ts'));
      expect(before.inputs).toContain(resolve('infra', 'workflow.ts'));
      expect(unchanged.builtAt).toBe(before.builtAt);
      expect(rebuilt.builtAt).toBeGreaterThan(before.builtAt);
    });
});
