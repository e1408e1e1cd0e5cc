// Where a profiled run of our CLI spent its CPU: a V8 .cpuprofile (from
// `node --cpu-prof`) summed by function, self time first.

import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';

import { PROJECT_DIR } from './engine.js';
import { table } from './report.js';

interface CpuProfileNode {
  id: number;
  callFrame: {
    functionName: string; url: string; lineNumber: number;
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

  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    if (!node) return;
    const frame = frameName(node);
    selfUs.set(frame, (selfUs.get(frame) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });

  const durationUs = profile.endTime - profile.startTime;
  const lines = [...selfUs].map(([frame, us]) => ({
    frame, selfMs: us / 1000, share: us / durationUs,
  })).sort((a, b) => b.selfMs - a.selfMs);
  return {
    file: join(dir, file),
    durationMs: durationUs / 1000,
    idleMs: (selfUs.get('(idle)') ?? 0) / 1000,
    top: lines.slice(0, top),
  };
}

function frameName(node: CpuProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  if (!url) return functionName || '(anonymous)';
  const path = url.startsWith('file://')
    ? relative(PROJECT_DIR, new URL(url).pathname) : url;
  return `${functionName || '(anonymous)'} (${path}:${lineNumber + 1})`;
}

export function profileTable(summary: ProfileSummary): string {
  return `${table([
    ['self time', 'share', 'function'],
    ...summary.top.map((l) => [`${l.selfMs.toFixed(0)} ms`,
      `${(l.share * 100).toFixed(1)}%`, l.frame]),
  ])}\nprofile: ${summary.file}`;
}
