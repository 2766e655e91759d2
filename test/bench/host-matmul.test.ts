/**
 * The host-free matmul benchmark that kernels-bench/hosts.mjs runs in Node, Deno and Chromium, here
 * on Dawn at a small size: its rows say what ran and how it was timed, GFLOP/s is 2n³ over the
 * median, products are right, and with timestamps the GPU time lies inside the wall time.
 */
import { describe, expect, it } from 'vitest';
import { Runtime, planMatmul } from '../../src/index';
import { benchMatmulOnHost, type HostResult } from '../../kernels-bench/host-matmul';
import { testRuntime } from '../support/runtime';

const N = 48;
const OPTS = { sizes: [N], variants: ['default', 'naive'], warmup: 1, reps: 3, minReps: 3, budgetMs: 5_000 };

function checkRows(r: HostResult, rt: Runtime): void {
  expect(r.rows.map((x) => [x.size, x.variant])).toEqual([
    [N, 'default'],
    [N, 'naive'],
  ]);
  for (const x of r.rows) {
    expect(x.reps).toBe(3);
    expect(x.medianMs).toBeGreaterThan(0);
    expect(x.gflops).toBeCloseTo((2 * N ** 3) / x.medianMs / 1e6, 9);
    expect(x.maxRelErr).toBeLessThan(1e-5);
  }
  const plan = planMatmul(rt, N, N, { transB: false });
  expect(r.rows[0]!.kernel.startsWith(`${plan.variant} (matmul_${plan.shader}`)).toBe(true);
  expect(r.rows[1]!.kernel).toBe('naive (matmul_naive)');
  expect(r.facts.host).toBe('node');
  expect(r.facts.caps).toEqual(rt.caps);
  expect(r.facts.describe).toBe(rt.describe());
}

describe('host matmul benchmark', () => {
  it('without a profiler: wall time, GFLOP/s = 2n³/t, correct products', async () => {
    const rt = await testRuntime();
    const r = await benchMatmulOnHost(rt, OPTS);
    expect(r.facts.timing).toBe('wall');
    checkRows(r, rt);
    for (const x of r.rows) expect(x.medianMs).toBe(x.wallMs);
  });

  it('with a profiling runtime: GPU timestamps, each median inside the wall median', async () => {
    const rt = await Runtime.create({ profile: true, maxBatch: 64 });
    try {
      const r = await benchMatmulOnHost(rt, OPTS);
      expect(r.facts.timing).toBe(rt.caps.timestamps ? 'timestamps' : 'wall');
      checkRows(r, rt);
      // Clock domains differ; a kernel cannot take much longer than the call that waited for it.
      for (const x of r.rows) expect(x.medianMs).toBeLessThanOrEqual(x.wallMs * 1.05 + 0.05);
    } finally {
      rt.dispose();
    }
  });

  it('refuses an unknown variant by name', async () => {
    await expect(benchMatmulOnHost(await testRuntime(), { ...OPTS, variants: ['default', 'fast'] })).rejects.toThrow(/unknown matmul variant 'fast'/);
  });
});
