/**
 * The adapter's own ceilings, measured first so every kernel can be quoted as a % of them:
 * FMA throughput from a dependent-FMA kernel and copy bandwidth from a vec4 copy.
 */
import fmaCode from '../shaders/peak_fma.wgsl';
import copyCode from '../shaders/peak_copy.wgsl';
import type { Runtime } from '../src/gpu/runtime.js';
import { grid1d } from '../src/ops/geometry.js';
import { median, timeCalls } from './timing.js';

const FMA = { name: 'peak_fma', code: fmaCode };
const COPY = { name: 'peak_copy', code: copyCode };

export interface Peaks {
  fmaGflops: number;
  copyGBs: number;
  detail: string;
}

export async function measurePeaks(rt: Runtime): Promise<Peaks> {
  const cpu = rt.caps.isCpu;
  // Enough work that submit/readback overhead is noise: ~8.6 GFLOP on a CPU adapter, ~550 on a GPU.
  const invocations = cpu ? 65536 : 4 * 1024 * 1024;
  const iters = cpu ? 8192 : 8192;
  const flops = 2 * 8 * iters * invocations;
  const sink = rt.pool.acquire(invocations * 4, 'peak_fma_sink');
  const [x, y] = grid1d(invocations, 256, rt.caps.maxWorkgroupsPerDimension);
  const fmaTimes = await timeCalls(async () => {
    rt.dispatch({ kernel: { shader: FMA, entry: 'main', overrides: { ITERS: iters } }, buffers: { sink }, workgroups: [x, y], work: { flops } });
    await rt.sync();
  }, { minReps: 5, maxReps: 9, budgetMs: 4000 });
  rt.pool.release(sink);

  // A GPU copies 256 MiB in well under a millisecond, so several copies go into one timed submit.
  const bytes = Math.min(cpu ? 64 * 2 ** 20 : 256 * 2 ** 20, rt.caps.maxStorageBufferBindingSize);
  const copies = cpu ? 1 : 20;
  const src = rt.pool.acquire(bytes, 'peak_copy_src');
  const dst = rt.pool.acquire(bytes, 'peak_copy_dst');
  const n = bytes / 16;
  const copyTimes = await timeCalls(async () => {
    for (let i = 0; i < copies; i++) {
      rt.dispatch({ kernel: { shader: COPY, entry: 'main' }, buffers: { src, dst }, params: { n }, workgroups: grid1d(n, 256, rt.caps.maxWorkgroupsPerDimension), work: { bytes: 2 * bytes } });
    }
    await rt.sync();
  }, { minReps: 5, maxReps: 9, budgetMs: 4000 });
  rt.pool.release(src);
  rt.pool.release(dst);

  const fmaMs = median(fmaTimes);
  const copyMs = median(copyTimes);
  return {
    fmaGflops: flops / fmaMs / 1e6,
    copyGBs: (2 * bytes * copies) / copyMs / 1e6,
    detail: `FMA: ${invocations} invocations × 8 chains × ${iters} dependent FMAs, median ${fmaMs.toFixed(2)} ms; copy: ${copies} × ${bytes / 2 ** 20} MiB vec4, median ${copyMs.toFixed(2)} ms (wall time incl. submit and wait)`,
  };
}
