// Where a profiled run of our CLI spent its CPU: a V8 .cpuprofile (from
// `node --cpu-prof`) summed by function, self time first.

import { readdir, readFile } from 'node:fs/promises';
import { SourceMap } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { PROJECT_DIR } from './engine.js';
import { seconds, table } from './report.js';

interface CpuProfileNode {
  id: number;
  callFrame: {
    functionName: string; url: string; lineNumber: number;
    columnNumber: number;
  };
  children?: number[];
}

interface CpuProfile {
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileLine {
  /** `name (file:line)`, or a V8 pseudo-frame like `(garbage collector)`. */
  frame: string;
  selfMs: number;
  /** Share of the profile's whole duration. */
  share: number;
}

export interface ProfileSummary {
  file: string;
  durationMs: number;
  /** Time with no JavaScript on the stack: waiting for I/O. */
  idleMs: number;
  top: ProfileLine[];
  /** Self time by where the code lives: a package, a folder of ours, a
   * part of Node, or a native frame. */
  byModule: ProfileLine[];
}

/** Summarises the newest .cpuprofile of `dir`. */
export async function summariseProfile(dir: string, top = 15):
  Promise<ProfileSummary> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'))
    .sort();
  const file = files.at(-1);
  if (!file) throw new Error(`no .cpuprofile in ${dir}`);
  const profile = JSON.parse(await readFile(join(dir, file), 'utf8')) as
    CpuProfile;

  await mapToSources(profile.nodes);

  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<string, number>();
  const moduleUs = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    if (!node) return;
    const us = profile.timeDeltas[i] ?? 0;
    const frame = frameName(node);
    selfUs.set(frame, (selfUs.get(frame) ?? 0) + us);
    const module = moduleName(node);
    moduleUs.set(module, (moduleUs.get(module) ?? 0) + us);
  });

  const durationUs = profile.endTime - profile.startTime;
  const lines = (totals: Map<string, number>) => [...totals]
    .map(([frame, us]) => ({
      frame, selfMs: us / 1000, share: us / durationUs,
    })).sort((a, b) => b.selfMs - a.selfMs);
  return {
    file: join(dir, file),
    durationMs: durationUs / 1000,
    idleMs: (selfUs.get('(idle)') ?? 0) / 1000,
    top: lines(selfUs).slice(0, top),
    byModule: lines(moduleUs).slice(0, top),
  };
}

/**
 * Points the frames of the built CLI (dist/) at the TypeScript or package
 * source they were bundled from, through the bundle's source maps.
 */
async function mapToSources(nodes: CpuProfileNode[]): Promise<void> {
  const maps = new Map<string, SourceMap | undefined>();
  for (const node of nodes) {
    const { url, lineNumber, columnNumber } = node.callFrame;
    if (!url.startsWith('file://') || !url.includes('/dist/')) continue;

    if (!maps.has(url)) {
      const payload = await readFile(`${fileURLToPath(url)}.map`, 'utf8')
        .then((text) => JSON.parse(text) as object, () => undefined);
      maps.set(url, payload && new SourceMap(payload as never));
    }
    const entry = maps.get(url)?.findEntry(lineNumber, columnNumber);
    if (!entry || !('originalSource' in entry)) continue;

    node.callFrame.url = pathToFileURL(resolve(dirname(fileURLToPath(url)),
      entry.originalSource)).href;
    node.callFrame.lineNumber = entry.originalLine;
  }
}

/** `tsx`, `functions/lib/registry`, `node:internal/streams`, `(idle)`. */
function moduleName(node: CpuProfileNode): string {
  const { functionName, url } = node.callFrame;
  if (!url) return `native: ${functionName || '(anonymous)'}`;
  if (url.startsWith('node:')) {
    return url.split('/').slice(0, url.startsWith('node:internal/') ? 2 : 1)
      .join('/');
  }

  const path = url.startsWith('file://')
    ? relative(PROJECT_DIR, new URL(url).pathname) : url;
  const inPackage = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (inPackage) return `package ${inPackage[1]}`;
  return path.split('/').slice(0, -1).join('/') || path;
}

function frameName(node: CpuProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  if (!url) return functionName || '(anonymous)';
  const path = url.startsWith('file://')
    ? relative(PROJECT_DIR, new URL(url).pathname) : url;
  return `${functionName || '(anonymous)'} (${path}:${lineNumber + 1})`;
}

/** `what` (a profiled run), then where its CPU went, as two tables. */
export function profileTable(what: string, summary: ProfileSummary):
  string {
  const rows = (lines: ProfileLine[]) => lines.map((l) => [
    `${l.selfMs.toFixed(0)} ms`, `${(l.share * 100).toFixed(1)}%`, l.frame]);
  return `${what}, CPU self time by function ` +
    `(${seconds(summary.durationMs)} in all, ` +
    `${seconds(summary.idleMs)} idle):\n${table([
    ['self time', 'share', 'where'],
    ...rows(summary.byModule.slice(0, 10)),
  ], ['right', 'right', 'left'])}\n\n${table([
    ['self time', 'share', 'function'],
    ...rows(summary.top),
  ], ['right', 'right', 'left'])}\nprofile: ${summary.file}`;
}
