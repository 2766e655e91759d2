/**
 * `reef bench`: the adapter's peaks, then matmul at square sizes and at coralbay-b GEMM shapes for
 * each of reef's variants, the naive kernel and the peer engines, in one run on one adapter.
 * Prints tables; `--out DIR` also writes results.json and results.md there.
 */
import { execSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Runtime } from '../src/gpu/runtime.js';
import { MATMUL_VARIANTS, type MatmulVariant } from '../src/ops/matmul.js';
import { benchShape, CORALBAY_SHAPES, reefEngine, SQUARE_SIZES, squareShape, type Engine, type MatmulRow, type MatmulShape } from './matmul.js';
import { measurePeaks } from './peaks.js';
import { loadPeerEngines } from './peers.js';
import { runSweep } from './sweep.js';
import { markdownTable, MATMUL_HEAD, matmulCells, textTable } from './report.js';

export interface BenchOptions {
  root: string;
  sizes?: number[];
  coralbay?: boolean;
  peers?: string[];
  variants?: MatmulVariant[];
  f16?: boolean;
  /** Largest square size the naive kernel runs at (it is slow). */
  naiveMax?: number;
  budgetMs?: number;
  out?: string;
  /** Sweep each variant's tile configurations instead of comparing engines. */
  sweep?: boolean;
  log?: (line: string) => void;
}

function commit(root: string): string {
  try {
    const hash = execSync('git rev-parse --short HEAD', { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execSync('git status --porcelain --untracked-files=no', { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    return dirty ? `${hash} (with uncommitted changes)` : hash;
  } catch {
    return 'unknown';
  }
}

export async function runBench(rt: Runtime, o: BenchOptions): Promise<{ rows: MatmulRow[]; markdown: string }> {
  const log = o.log ?? console.log;
  const date = new Date().toISOString();
  const header = [`adapter: ${rt.describe()}`, `date: ${date}`, `commit: ${commit(o.root)}`, `host: node ${process.version}, ${process.platform}-${process.arch}`];
  header.forEach((l) => log(l));

  const peaks = await measurePeaks(rt);
  log(`peak FMA: ${peaks.fmaGflops.toFixed(1)} GFLOP/s   copy bandwidth: ${peaks.copyGBs.toFixed(1)} GB/s`);
  log(`  (${peaks.detail})`);

  if (o.sweep) {
    const shapes = [...(o.sizes ?? [1024]).map(squareShape), ...(o.coralbay === false ? [] : CORALBAY_SHAPES)];
    await runSweep(rt, shapes, o.variants ?? MATMUL_VARIANTS, peaks.fmaGflops, o.budgetMs ?? 3000, log);
    return { rows: [], markdown: '' };
  }

  const peers = o.peers?.length ? await loadPeerEngines(rt, o.root, o.peers, log) : null;
  peers?.notes.forEach((n) => log(`  peer ${n}`));

  const variants = (o.variants ?? MATMUL_VARIANTS).filter((v) => v !== 'naive');
  const shapes: MatmulShape[] = [...(o.sizes ?? SQUARE_SIZES).map(squareShape), ...(o.coralbay === false ? [] : CORALBAY_SHAPES)];
  const naiveMax = o.naiveMax ?? 2048;
  const rows: MatmulRow[] = [];
  const sections: string[] = [];
  log('Timing: wall time per call, host arrays in → host array out (both uploads, the multiply and the readback included), median over repeats after one warm-up call. kernel GFLOP/s: GPU time of reef\'s matmul kernel alone from timestamp queries.');
  for (const s of shapes) {
    const engines: Engine[] = [];
    const isSquare = s.M === s.N && s.N === s.K;
    if (!isSquare || s.M <= naiveMax) engines.push(reefEngine(rt, 'naive', 'f32'));
    for (const v of variants) {
      engines.push(reefEngine(rt, v, 'f32'));
      if (o.f16 !== false && rt.caps.f16) engines.push(reefEngine(rt, v, 'f16'));
    }
    engines.push(...(peers?.engines ?? []));
    log(`\n${s.label}: ${s.M}×${s.K} · ${s.K}×${s.N}`);
    const shapeRows = await benchShape(s, engines, {
      peakGflops: peaks.fmaGflops,
      budgetMs: o.budgetMs ?? 3000,
      beforeEngine: async () => {
        await rt.sync();
        await rt.profiler?.reset();
        rt.pool.resetPeak();
      },
      onRow: (r) => log(`  ${r.engine.padEnd(22)} ${r.gflops.toFixed(2).padStart(9)} GFLOP/s  (${r.medianMs.toFixed(1)} ms, ${r.reps} reps, err ${r.maxRelErr.toExponential(1)})`),
    });
    rows.push(...shapeRows);
    log(textTable(MATMUL_HEAD, shapeRows.map(matmulCells)));
    sections.push(`### ${s.label}: ${s.M}×${s.K} · ${s.K}×${s.N}\n\n${markdownTable(MATMUL_HEAD, shapeRows.map(matmulCells))}`);
  }
  await peers?.dispose();

  const markdown = [
    ...header.map((l) => `- ${l}`),
    `- peak FMA ${peaks.fmaGflops.toFixed(1)} GFLOP/s, copy ${peaks.copyGBs.toFixed(1)} GB/s (${peaks.detail})`,
    ...(peers?.notes ?? []).map((n) => `- peer ${n}`),
    '',
    ...sections,
  ].join('\n\n');
  if (o.out) {
    mkdirSync(o.out, { recursive: true });
    writeFileSync(join(o.out, 'results.json'), JSON.stringify({ header, peaks, rows }, null, 2));
    writeFileSync(join(o.out, 'results.md'), `${markdown}\n`);
    log(`\nwrote ${join(o.out, 'results.json')} and results.md`);
  }
  return { rows, markdown };
}
