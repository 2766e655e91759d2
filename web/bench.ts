/**
 * The kernels-bench matmul comparison in the page: the same engines, timing and spot checks as
 * `reef bench` (kernels-bench/matmul.ts, peaks.ts), at a few small square shapes, without the peer
 * engines or any file output (those live in kernels-bench/main.ts, which needs Node).
 */
import { benchShape, reefEngine, squareShape, type Engine, type MatmulRow } from '../kernels-bench/matmul.js';
import { measurePeaks, type Peaks } from '../kernels-bench/peaks.js';
import { MATMUL_VARIANTS, type Runtime } from '../src/index.js';

export const BENCH_SIZES = [64, 128, 256, 512];

export interface BenchOptions {
  sizes: number[];
  /** Measure the adapter's FMA and copy peaks first (a few seconds on a CPU adapter). */
  peaks: boolean;
  budgetMs: number;
  onLine?: (line: string) => void;
  onRow?: (row: MatmulRow) => void;
}

export async function runBrowserBench(rt: Runtime, o: BenchOptions): Promise<{ peaks: Peaks | null; rows: MatmulRow[] }> {
  const log = o.onLine ?? (() => {});
  let peaks: Peaks | null = null;
  if (o.peaks) {
    log('measuring peaks (FMA, copy)…');
    peaks = await measurePeaks(rt);
    log(`peak FMA ${peaks.fmaGflops.toFixed(1)} GFLOP/s, copy ${peaks.copyGBs.toFixed(1)} GB/s`);
  }
  const rows: MatmulRow[] = [];
  for (const n of o.sizes) {
    const engines: Engine[] = [];
    for (const v of MATMUL_VARIANTS) {
      engines.push(reefEngine(rt, v, 'f32'));
      if (v !== 'naive' && rt.caps.f16) engines.push(reefEngine(rt, v, 'f16'));
    }
    log(`${n}²: ${engines.map((e) => e.name).join(', ')}`);
    rows.push(
      ...(await benchShape(squareShape(n), engines, {
        peakGflops: peaks?.fmaGflops ?? Number.NaN,
        budgetMs: o.budgetMs,
        beforeEngine: async () => {
          await rt.sync();
          await rt.profiler?.reset();
          rt.pool.resetPeak();
        },
        onRow: o.onRow,
      })),
    );
  }
  return { peaks, rows };
}
