// `node scripts/build.mjs [--outdir DIR] [--force]`: builds the CLI into
// dist/ (or DIR) for `npm start`, and does nothing when dist/ is newer than
// every file it was built from.
//
// What it writes:
// - cli/main.js, cli/cli.js and its chunks: the CLI as ESM split at each
//   dynamic import, so a command loads only its own modules, with every
//   dependency bundled in (no TypeScript compiled at start, fewer files to
//   resolve), and V8's compile cache kept in cli/compile-cache/;
// - workflow-definition.json: the workflow definition synthesized from
//   infra/workflow.ts with aws-cdk-lib, kept with a key of the sources and
//   the aws-cdk-lib version so that it is synthesized again only when one
//   changes. The bundled CLI carries this definition in place of
//   functions/local/definition.ts, so a run never loads aws-cdk-lib;
// - build-info.json: when it was built and from which files.

import { createHash } from 'node:crypto';
import {
  mkdir, readFile, rename, rm, stat, writeFile,
} from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_OUTDIR = join(ROOT, 'dist');
const CLI_ENTRY = join(ROOT, 'functions', 'cli', 'main.ts');
const WORKFLOW_SOURCE = join(ROOT, 'infra', 'workflow.ts');
const DEFINITION_MODULE = join(ROOT, 'functions', 'local', 'definition.ts');

/** Files that change what any build gives, besides the sources. */
const BUILD_INPUTS = [
  fileURLToPath(import.meta.url),
  join(ROOT, 'package.json'),
  join(ROOT, 'package-lock.json'),
  // rewritten by every npm install or ci
  join(ROOT, 'node_modules', '.package-lock.json'),
];

// bundled CommonJS modules call require() for Node's own modules, which
// an ES module does not have
const REQUIRE_BANNER = "import { createRequire as __cliCreateRequire } " +
  "from 'node:module';\n" +
  'const require = __cliCreateRequire(import.meta.url);';

// V8 keeps the code it compiled for the chunks beside them, which saves
// a part of every later start (Node checks it against each chunk's text)
const ENTRY = `// built by scripts/build.mjs
import { enableCompileCache } from 'node:module';
import { fileURLToPath } from 'node:url';

enableCompileCache(fileURLToPath(new URL('compile-cache', import.meta.url)));
await import('./cli.js');
`;

/**
 * Builds into `outdir` unless it is up to date (or `force`). Resolves with
 * whether it built.
 */
export async function build({ outdir = DEFAULT_OUTDIR, force = false } = {}) {
  const infoPath = join(outdir, 'build-info.json');
  if (!force && await isFresh(infoPath)) return false;

  // anything edited from here on is newer than this build
  const startedAt = Date.now();
  const esbuild = await import('esbuild');
  const definition = await workflowDefinition(esbuild, outdir);

  // built aside, then swapped in whole: a CLI starting meanwhile finds
  // either the old build or the new one
  const next = join(outdir, `cli.next-${process.pid}`);
  const result = await esbuild.build({
    entryPoints: { cli: CLI_ENTRY },
    outdir: next,
    chunkNames: 'chunks/[name]-[hash]',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    sourcemap: 'linked',
    banner: { js: REQUIRE_BANNER },
    metafile: true,
    logLevel: 'warning',
    plugins: [prebuiltDefinition(definition.value), leaveOutUnused()],
  });
  await writeFile(join(next, 'main.js'), ENTRY);
  await swapIn(next, join(outdir, 'cli'));

  const inputs = [...definition.inputs,
    ...Object.keys(result.metafile.inputs)
      // packages count through the lockfiles; stubs have no file
      .filter((input) => !input.startsWith('node_modules/') &&
        !/^[a-z-]+:/.test(input))
      .map((input) => resolve(ROOT, input))];
  await writeAtomically(infoPath, JSON.stringify({
    builtAt: startedAt,
    inputs: [...new Set(inputs)].sort(),
  }, null, 2));
  return true;
}

/**
 * Moves the `next` folder to `path`, the one there before out of the way.
 * When a build running at the same time swapped in its own first, that
 * one stays (both come from the same sources) and `next` is removed.
 */
async function swapIn(next, path) {
  const old = `${path}.old-${process.pid}`;
  await rename(path, old).catch((error) => {
    if (error.code !== 'ENOENT') throw error;
  });
  try {
    await rename(next, path);
  } catch (error) {
    if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
  } finally {
    await rm(next, { recursive: true, force: true });
    await rm(old, { recursive: true, force: true });
  }
}

/** True when every file the last build read is older than that build. */
async function isFresh(infoPath) {
  let info;
  try {
    info = JSON.parse(await readFile(infoPath, 'utf8'));
  } catch {
    return false;
  }

  const files = [...BUILD_INPUTS, ...info.inputs];
  const times = await Promise.all(files.map((file) => stat(file).then(
    (stats) => stats.mtimeMs, () => Infinity)));
  return times.every((time) => time < info.builtAt);
}

/**
 * The synthesized definition and the files it came from: from
 * workflow-definition.json when its key matches, else synthesized by
 * loading infra/workflow.ts (bundled on its own, packages left to Node).
 */
async function workflowDefinition(esbuild, outdir) {
  const result = await esbuild.build({
    entryPoints: [WORKFLOW_SOURCE],
    outfile: 'workflow.mjs',
    write: false,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    packages: 'external',
    metafile: true,
    logLevel: 'warning',
  });
  const inputs = Object.keys(result.metafile.inputs)
    .map((input) => resolve(ROOT, input)).sort();

  const hash = createHash('sha256');
  for (const input of inputs) {
    hash.update(relative(ROOT, input)).update('\0')
      .update(await readFile(input)).update('\0');
  }
  const require = createRequire(WORKFLOW_SOURCE);
  const cdk = JSON.parse(await readFile(
    require.resolve('aws-cdk-lib/package.json'), 'utf8'));
  const key = hash.update(`aws-cdk-lib@${cdk.version}`).digest('hex');

  const path = join(outdir, 'workflow-definition.json');
  try {
    const kept = JSON.parse(await readFile(path, 'utf8'));
    if (kept.key === key) return { value: kept.definition, inputs };
  } catch {
    // none yet, or unreadable: synthesize
  }

  // imported from inside the project, where Node finds aws-cdk-lib
  const moduleDir = join(ROOT, 'node_modules', '.cache', 'ghcr-backup');
  const modulePath = join(moduleDir, `workflow-${process.pid}.mjs`);
  await mkdir(moduleDir, { recursive: true });
  await writeFile(modulePath, result.outputFiles[0].contents);
  let value;
  try {
    const workflow = await import(pathToFileURL(modulePath).href);
    value = workflow.synthesizeWorkflowDefinition();
  } finally {
    await rm(modulePath, { force: true });
  }

  await mkdir(outdir, { recursive: true });
  await writeAtomically(path,
    JSON.stringify({ key, definition: value }, null, 2));
  return { value, inputs };
}

async function writeAtomically(path, text) {
  const partial = `${path}.${process.pid}.partial`;
  await writeFile(partial, text);
  await rename(partial, path);
}

/** Replaces functions/local/definition.ts with the synthesized value. */
function prebuiltDefinition(definition) {
  return {
    name: 'prebuilt-workflow-definition',
    setup(build) {
      build.onLoad({ filter: /[\\/]functions[\\/]local[\\/]definition\.ts$/ },
        (args) => {
          if (args.path !== DEFINITION_MODULE) return undefined;
          return {
            loader: 'js',
            contents: '// synthesized by scripts/build.mjs\n' +
              `const definition = ${JSON.stringify(definition)};\n` +
              'export async function workflowDefinition() {\n' +
              '  return structuredClone(definition);\n}\n',
          };
        });
    },
  };
}

/**
 * What aws-local-stepfunctions imports that a local run of ours never
 * uses, and would load (over a megabyte of code) at every start: an AWS
 * Lambda client for Task states without a local handler (every one of
 * ours has one: the run checks that before it starts), and the schema
 * validator the run skips (the tests validate the definition). Each is
 * left out of the bundle for a stub that throws if ever called.
 */
const UNUSED_BY_LOCAL_RUN = ['@aws-sdk/client-lambda',
  '@aws-sdk/credential-providers', 'asl-validator'];

function leaveOutUnused() {
  const filter = new RegExp(`^(${UNUSED_BY_LOCAL_RUN.join('|')})$`);
  return {
    name: 'leave-out-unused',
    setup(build) {
      build.onResolve({ filter }, (args) => {
        if (!/[\\/]node_modules[\\/]aws-local-stepfunctions[\\/]/
          .test(args.importer)) return undefined;
        return { path: args.path, namespace: 'left-out' };
      });
      build.onLoad({ filter: /.*/, namespace: 'left-out' }, (args) => ({
        loader: 'js',
        contents: leftOutModule(args.path),
      }));
    },
  };
}

function leftOutModule(name) {
  const fail = `throw new Error(${JSON.stringify(`${name} is left out of ` +
    'the built CLI (scripts/build.mjs): a local run serves every Task ' +
    'state in-process and does not validate the definition')});`;
  return [
    `function leftOut() { ${fail} }`,
    'export default leftOut;',
    'export class LambdaClient { constructor() { leftOut(); } }',
    'export class InvokeCommand { constructor() { leftOut(); } }',
    'export const fromCognitoIdentityPool = leftOut;',
  ].join('\n');
}

function parseArgs(argv) {
  const options = {};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--force') options.force = true;
    else if (argv[i] === '--outdir' && argv[i + 1]) {
      options.outdir = resolve(argv[++i]);
    } else {
      throw new Error(`unknown argument: ${argv[i]} ` +
        '(usage: node scripts/build.mjs [--outdir DIR] [--force])');
    }
  }
  return options;
}

if (process.argv[1] && resolve(process.argv[1]) ===
  fileURLToPath(import.meta.url)) {
  build(parseArgs(process.argv.slice(2))).catch((error) => {
    process.stderr.write(`build failed: ${error.stack ?? error}\n`);
    process.exitCode = 1;
  });
}
