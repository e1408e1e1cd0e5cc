// Numbers into words: medians, goals and the tables the benchmark prints.

export interface Goal {
  scenario: string;
  name: string;
  /** What the goal asks, in words: "<= 1.00 x skopeo". */
  target: string;
  /** What was measured, in words. */
  measured: string;
  met: boolean;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? sorted[middle]!
    : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export const MIB = 1024 * 1024;

export function seconds(ms: number | undefined): string {
  return ms === undefined || !Number.isFinite(ms)
    ? '-' : `${(ms / 1000).toFixed(2)} s`;
}

export function mib(bytes: number | undefined): string {
  return bytes === undefined || !Number.isFinite(bytes)
    ? '-' : `${(bytes / MIB).toFixed(1)} MiB`;
}

export function ratio(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value)
    ? '-' : `${value.toFixed(2)} x`;
}

/**
 * A plain text table: the first row is the header. The first column is
 * aligned left and the others right, unless `align` says otherwise.
 */
export function table(
  rows: readonly (readonly string[])[],
  align: readonly ('left' | 'right')[] = [],
): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  const line = (row: readonly string[]) => row
    .map((cell, i) => (align[i] ?? (i === 0 ? 'left' : 'right')) === 'left'
      ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))
    .join('  ').trimEnd();
  const [header, ...body] = rows;
  if (!header) return '';
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(header), rule, ...body.map(line)].join('\n');
}

export function goalsTable(goals: readonly Goal[]): string {
  return table([
    ['goal', 'target', 'measured', 'result'],
    ...goals.map((g) => [`${g.scenario}: ${g.name}`, g.target, g.measured,
      g.met ? 'met' : 'MISSED']),
  ]);
}
