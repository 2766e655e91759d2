/**
 * The profiler (src/gpu/profiler.ts): per-kernel calls, GPU time from timestamp queries, and
 * GFLOP/s / GB/s derived from the work each op declares; its table formatting.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatProfile, type KernelProfile } from '../../src/gpu/profiler';
import { Runtime } from '../../src/gpu/runtime';
import { tensor } from '../../src/tensor/create';
import { full } from '../../src/tensor/fill';
import { matmul } from '../../src/ops/matmul';
import { scale } from '../../src/ops/pointwise';
import { testRuntime } from '../support/runtime';

describe('formatProfile', () => {
  const rows: KernelProfile[] = [
    { kernel: 'matmul_regblock', calls: 3, totalMs: 1.5, meanUs: 500, gflops: 12.34, gbps: 3.21 },
    { kernel: 'pointwise.scale_shift', calls: 10, totalMs: 0.25, meanUs: 25, gflops: null, gbps: 9.876 },
  ];

  it('lists every kernel with its numbers, and the total time', () => {
    const text = formatProfile(rows, true);
    const lines = text.split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^kernel\s+calls\s+total ms\s+mean µs\s+GFLOP\/s\s+GB\/s$/);
    expect(lines[1]).toMatch(/^matmul_regblock\s+3\s+1\.500\s+500\.0\s+12\.3\s+3\.21$/);
    expect(lines[2]).toMatch(/^pointwise\.scale_shift\s+10\s+0\.250\s+25\.0\s+-\s+9\.88$/);
    expect(lines[3]).toBe('GPU time from timestamp queries; total 1.750 ms');
    // columns line up
    expect(new Set(lines.slice(0, 3).map((l) => l.length)).size).toBe(1);
  });

  it('says so when there are no timestamps', () => {
    const text = formatProfile([{ kernel: 'k', calls: 2, totalMs: null, meanUs: null, gflops: null, gbps: null }], false);
    expect(text).toMatch(/^k\s+2\s+-\s+-\s+-\s+-$/m);
    expect(text).toMatch(/no timestamp queries: calls only/);
  });
});

describe('a profiling runtime', () => {
  let rt: Runtime;
  beforeAll(async () => {
    rt = await Runtime.create({ profile: true, maxBatch: 2000 });
  });
  afterAll(() => rt?.dispose());

  it('times a matmul and derives GFLOP/s from its declared work', async () => {
    await rt.profiler!.reset();
    const M = 48;
    const K = 64;
    const N = 40;
    const a = tensor(rt, Array.from({ length: M * K }, (_, i) => (i % 7) - 3), [M, K]);
    const b = tensor(rt, Array.from({ length: K * N }, (_, i) => (i % 5) - 2), [K, N]);
    const c = matmul(a, b);
    await c.read();
    const rows = await rt.profile();
    const mm = rows.filter((r) => r.kernel.startsWith('matmul'));
    expect(mm, `rows: ${rows.map((r) => r.kernel)}`).toHaveLength(1);
    const row = mm[0]!;
    expect(row.calls).toBe(1);
    if (rt.caps.timestamps) {
      expect(row.totalMs).toBeGreaterThan(0);
      expect(row.meanUs).toBeCloseTo(row.totalMs! * 1000, 6);
      expect(row.gflops).toBeGreaterThan(0);
      const flops = 2 * M * N * K;
      expect(row.gflops! / (flops / (row.totalMs! / 1e3) / 1e9)).toBeCloseTo(1, 9);
      expect(row.gbps! / ((4 * (M * K + K * N + M * N)) / (row.totalMs! / 1e3) / 1e9)).toBeCloseTo(1, 9);
    } else {
      console.log('adapter has no timestamp-query: only call counts are checked');
      expect(row.totalMs).toBeNull();
      expect(row.gflops).toBeNull();
    }
    const table = await rt.profileTable();
    expect(table).toContain(row.kernel);
    expect(table).toMatch(rt.caps.timestamps ? /GPU time from timestamp queries/ : /calls only/);
    for (const t of [a, b, c]) t.dispose();
  });

  it('counts every dispatch per kernel, across more dispatches than one query set holds', async () => {
    await rt.profiler!.reset();
    let x = full(rt, [256], 1);
    const n = 600; // the query set has 512 slots: the runtime must submit in between
    for (let i = 0; i < n; i++) {
      const y = scale(x, 1, 1);
      x.dispose();
      x = y;
    }
    expect((await x.read())[0]).toBe(1 + n);
    const rows = await rt.profile();
    const byName = new Map(rows.map((r) => [r.kernel, r]));
    expect(byName.get('pointwise.scale_shift')?.calls).toBe(n);
    expect(byName.get('pointwise.fill')?.calls).toBe(1);
    if (rt.caps.timestamps) {
      expect(byName.get('pointwise.scale_shift')!.totalMs).toBeGreaterThan(0);
      // sorted slowest first
      const totals = rows.map((r) => r.totalMs!);
      expect([...totals].sort((p, q) => q - p)).toEqual(totals);
    }
    x.dispose();
    await rt.checkErrors();
  });

  it('reset() clears the table', async () => {
    const x = full(rt, [8], 1);
    await x.read();
    expect((await rt.profile()).length).toBeGreaterThan(0);
    await rt.profiler!.reset();
    expect(await rt.profile()).toEqual([]);
    x.dispose();
  });
});

describe('a runtime without profiling', () => {
  it('profile() is empty and profileTable() says profiling is off', async () => {
    const rt = await testRuntime();
    if (rt.profiler) {
      console.log('the shared runtime profiles (REEF_PROFILE=1): checking a fresh non-profiling one instead');
    }
    const plain = rt.profiler ? await Runtime.create({ profile: false }) : rt;
    try {
      expect(plain.profiler).toBeNull();
      expect(await plain.profile()).toEqual([]);
      expect(await plain.profileTable()).toMatch(/profiling is off/);
    } finally {
      if (plain !== rt) plain.dispose();
    }
  });
});
