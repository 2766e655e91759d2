/** Text and Markdown tables of benchmark results. */
import type { MatmulRow } from './matmul.js';

const f = (x: number | null, d = 1) => (x === null || !Number.isFinite(x) ? '-' : x.toFixed(d));

export const MATMUL_HEAD = ['engine', 'dtype', 'median ms', 'GFLOP/s', '% peak', '× naive', '× best peer', 'kernel GFLOP/s', 'peak MiB', 'max rel err', 'reps'];

export function matmulCells(r: MatmulRow): string[] {
  return [
    r.engine + (r.kind === 'reference' ? ' (native CPU, not WebGPU)' : ''),
    r.dtype,
    f(r.medianMs, 1),
    f(r.gflops, 2),
    f(r.pctPeak, 1),
    f(r.vsNaive, 2),
    f(r.vsBestPeer, 2),
    f(r.kernelGflops, 2),
    f(r.peakMiB, 1),
    `${r.maxRelErr.toExponential(1)}${r.ok ? '' : ' WRONG'}`,
    String(r.reps),
  ];
}

export function textTable(head: string[], rows: string[][]): string {
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ')).join('\n');
}

export function markdownTable(head: string[], rows: string[][]): string {
  const line = (r: string[]) => `| ${r.join(' | ')} |`;
  return [line(head), line(head.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.map(line)].join('\n');
}
