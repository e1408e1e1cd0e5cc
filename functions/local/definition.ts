// The workflow definition a local run executes: the one infra/ builds with
// aws-cdk-lib. Loading aws-cdk-lib and synthesizing take most of a second,
// more than an unchanged rerun's own work, so the definition is kept under
// the state directory, keyed by the source that builds it and the
// aws-cdk-lib version, and synthesized again whenever either changes.
//
// This module serves runs from source (tsx, the tests). The built CLI that
// `npm start` runs carries the definition synthesized at build time in its
// place (scripts/build.mjs), and so never loads aws-cdk-lib.

import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import type { WorkflowDefinition } from '../../infra/workflow.js';

const WORKFLOW_SOURCE = new URL('../../infra/workflow.ts', import.meta.url);

/**
 * The synthesized definition; from `cacheDir` when it holds the current
 * one, else synthesized and kept there. Without `cacheDir`, synthesized.
 */
export async function workflowDefinition(cacheDir?: string):
  Promise<WorkflowDefinition> {
  if (!cacheDir) return synthesize();

  const key = await cacheKey();
  const path = join(cacheDir, 'workflow', `definition-${key}.json`);
  try {
    return JSON.parse(await readFile(path, 'utf8')) as WorkflowDefinition;
  } catch {
    // missing or unreadable: build it
  }

  const definition = await synthesize();
  await mkdir(dirname(path), { recursive: true });
  const partial = `${path}.${process.pid}.partial`;
  await writeFile(partial, JSON.stringify(definition));
  await rename(partial, path);
  return definition;
}

async function synthesize(): Promise<WorkflowDefinition> {
  const { synthesizeWorkflowDefinition } =
    await import('../../infra/workflow.js');
  return synthesizeWorkflowDefinition();
}

/** What the definition depends on: its source and the CDK version. */
async function cacheKey(): Promise<string> {
  const require = createRequire(import.meta.url);
  const cdk = JSON.parse(await readFile(
    require.resolve('aws-cdk-lib/package.json'), 'utf8')) as
    { version: string };

  return createHash('sha256')
    .update(await readFile(WORKFLOW_SOURCE))
    .update(`\0aws-cdk-lib@${cdk.version}`)
    .digest('hex').slice(0, 16);
}
