/**
 * `reef bench --sweep`: the tile configurations of each matmul variant side by side, so a kernel
 * change or a new adapter can be re-tuned by rerunning one command.
 */
import type { Runtime } from '../src/gpu/runtime.js';
import type { MatmulVariant } from '../src/ops/matmul.js';
import { benchShape, reefEngine, type MatmulShape } from './matmul.js';
import { MATMUL_HEAD, matmulCells, textTable } from './report.js';

export const SWEEP_CONFIGS: Record<Exclude<MatmulVariant, 'naive'>, Record<string, number>[]> = {
  // With N % 4 == 0 these are the vec4 kernel's (TN counts vec4 columns); otherwise the scalar one's.
  regblock: [
    { TM: 6, TN: 2, WG: 16 },
    { TM: 6, TN: 2, WG: 8 },
    { TM: 6, TN: 1, WG: 8 },
    { TM: 8, TN: 2, WG: 16 },
    { TM: 8, TN: 2, WG: 8 },
    { TM: 4, TN: 4, WG: 8 },
    { TM: 4, TN: 2, WG: 16 },
  ],
  tiled: [
    { BM: 32, BN: 32, BK: 16, TM: 2, TN: 2 },
    { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 },
    { BM: 64, BN: 64, BK: 8, TM: 4, TN: 4 },
    { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8 },
    { BM: 128, BN: 64, BK: 16, TM: 8, TN: 4 },
  ],
};

export async function runSweep(rt: Runtime, shapes: MatmulShape[], variants: readonly MatmulVariant[], peakGflops: number, budgetMs: number, log: (s: string) => void): Promise<void> {
  for (const s of shapes) {
    const engines = variants.filter((v) => v !== 'naive').flatMap((v) => SWEEP_CONFIGS[v as 'regblock' | 'tiled'].map((c) => reefEngine(rt, v, 'f32', c)));
    log(`\nsweep ${s.label}: ${s.M}×${s.K} · ${s.K}×${s.N}`);
    const rows = await benchShape(s, engines, {
      peakGflops,
      budgetMs,
      beforeEngine: async () => {
        await rt.sync();
        await rt.profiler?.reset();
        rt.pool.resetPeak();
      },
      onRow: (r) => log(`  ${r.engine.padEnd(36)} ${r.gflops.toFixed(2).padStart(8)} GFLOP/s`),
    });
    log(textTable(MATMUL_HEAD, rows.map(matmulCells)));
  }
}
