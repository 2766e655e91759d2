/**
 * Gradient norms on the GPU (global and per tensor) against float64, non-finite detection, clip
 * coefficients, loss-scale removal, bitwise determinism, and tensors bound in pieces.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../../src/gpu/runtime';
import { tensor, type Tensor } from '../../src/index';
import { clipCoefficient, GRAD_NORM_CHUNK, GradClipper } from '../../src/train/grad-clip';
import { makeRng, type Rng } from '../ref/array';
import { expectRel, printErrorTable, roundF16 } from '../support/compare';
import { testRuntime } from '../support/runtime';

let rt: Runtime;
beforeAll(async () => {
  rt = await testRuntime();
});
afterAll(() => printErrorTable('grad norm'));

const BOUND = 1e-6;

function hostGrads(sizes: number[], rng: Rng, std = 1): Float32Array[] {
  return sizes.map((n) => {
    const a = new Float32Array(n);
    const s = std * (0.1 + 2 * rng.uniform()); // tensors of different scales
    for (let i = 0; i < n; i++) a[i] = rng.normal() * s;
    return a;
  });
}

function refNorms(grads: ArrayLike<number>[]): { norm: number; tensorNorms: number[] } {
  let total = 0;
  const tensorNorms = grads.map((g) => {
    let s = 0;
    for (let i = 0; i < g.length; i++) s += g[i]! * g[i]!;
    total += s;
    return Math.sqrt(s);
  });
  return { norm: Math.sqrt(total), tensorNorms };
}

function upload(r: Runtime, grads: Float32Array[]): Tensor[] {
  return grads.map((g) => tensor(r, g, [g.length]));
}

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

// Odd sizes around the chunk (4096) and workgroup (256) boundaries, plus one of several hundred chunks.
const SIZES = [1, 3, 255, 256, 257, 4095, 4096, 4097, 12_289, 1000, 7, 65_537, 300_001];

describe('gradient norms vs float64', () => {
  it('global and per-tensor norms of tensors of odd sizes', async () => {
    const g = hostGrads(SIZES, makeRng(1));
    const ts = upload(rt, g);
    const clip = new GradClipper(rt, { maxNorm: 0 });
    clip.recordGrads(ts);
    const st = await clip.read();
    const ref = refNorms(g);
    expectRel('grad norm', 'global', [st.norm], [ref.norm], BOUND);
    expectRel('grad norm', 'per tensor', st.tensorNorms, ref.tensorNorms, BOUND);
    for (let i = 0; i < SIZES.length; i++) expectRel('grad norm', 'each tensor', [st.tensorNorms[i]!], [ref.tensorNorms[i]!], BOUND);
    expect(st.finite).toBe(true);
    expect(st.clipCoef).toBe(1);
    expect([...st.multipliers]).toEqual(SIZES.map(() => 1));
    expect(st.nonFiniteTensors).toEqual([]);
    clip.dispose();
    for (const t of ts) t.dispose();
  });

  it('many tensors (300, some without a gradient), large and tiny magnitudes', async () => {
    const rng = makeRng(2);
    const sizes = Array.from({ length: 300 }, (_, i) => (i % 7 === 0 ? 1 + Math.floor(rng.uniform() * 9000) : 1 + Math.floor(rng.uniform() * 300)));
    for (const std of [1, 1e-12, 1e12]) {
      const g = hostGrads(sizes, rng, std);
      const ts: (Tensor | null)[] = upload(rt, g);
      const absent = [5, 17, 299];
      for (const i of absent) {
        ts[i]!.dispose();
        ts[i] = null;
        g[i] = new Float32Array(0);
      }
      const clip = new GradClipper(rt);
      clip.recordGrads(ts);
      const st = await clip.read();
      const ref = refNorms(g);
      expectRel('grad norm', `global ×${std}`, [st.norm], [ref.norm], BOUND);
      expectRel('grad norm', `per tensor ×${std}`, st.tensorNorms, ref.tensorNorms, BOUND);
      for (const i of absent) expect(st.tensorNorms[i]).toBe(0);
      expect(st.finite).toBe(true);
      clip.dispose();
      for (const t of ts) t?.dispose();
    }
  });

  it('f16 gradients (when the adapter has shader-f16)', async (ctx) => {
    if (!rt.caps.f16) ctx.skip();
    const g = hostGrads([5000, 33, 8193], makeRng(3)).map((a) => Float32Array.from(a, roundF16));
    const ts = g.map((a) => tensor(rt, a, [a.length], { dtype: 'f16' }));
    const clip = new GradClipper(rt);
    clip.recordGrads(ts);
    const st = await clip.read();
    const ref = refNorms(g);
    expectRel('grad norm', 'global f16', [st.norm], [ref.norm], BOUND);
    expectRel('grad norm', 'per tensor f16', st.tensorNorms, ref.tensorNorms, BOUND);
    clip.dispose();
    for (const t of ts) t.dispose();
  });

  it('no tensors: norm 0, finite', async () => {
    const clip = new GradClipper(rt);
    clip.recordGrads([]);
    const st = await clip.read();
    expect(st).toMatchObject({ norm: 0, finite: true, clipCoef: 1 });
    clip.dispose();
  });
});

describe('non-finite gradients', () => {
  for (const [what, bad] of [
    ['NaN', NaN],
    ['+Inf', Infinity],
    ['-Inf', -Infinity],
  ] as const) {
    it(`one ${what} in one element of one tensor is detected and names that tensor`, async () => {
      const g = hostGrads(SIZES, makeRng(4));
      for (const [t, i] of [
        [8, 12_288], // last element of a tensor, alone in its chunk
        [12, 150_000],
        [0, 0],
      ] as const) {
        const copy = g.map((a) => a.slice());
        copy[t]![i] = bad;
        const ts = upload(rt, copy);
        const clip = new GradClipper(rt);
        const control = clip.recordGrads(ts);
        const st = await clip.read();
        expect(st.finite).toBe(false);
        expect(st.nonFiniteTensors).toEqual([t]);
        expect([...st.multipliers]).toEqual(SIZES.map(() => 0)); // nothing would be applied
        // The control buffer says the same (what AdamW reads).
        const ctl = new Float32Array(await rt.read(control.buffer, 0, 4 * (4 + SIZES.length)));
        expect(ctl[control.okIndex]).toBe(0);
        clip.dispose();
        for (const x of ts) x.dispose();
      }
    });
  }

  it('large finite values are not mistaken for non-finite ones', async () => {
    const g = [Float32Array.from([3e18, -2e18, 1]), Float32Array.from([1e-30, 0])];
    const ts = upload(rt, g);
    const clip = new GradClipper(rt);
    clip.recordGrads(ts);
    const st = await clip.read();
    expect(st.finite).toBe(true);
    expectRel('grad norm', 'huge values', [st.norm], [refNorms(g).norm], BOUND);
    clip.dispose();
    for (const x of ts) x.dispose();
  });
});

describe('clip coefficients and loss scale', () => {
  it('global: max_norm/(‖g‖+1e-6) when the norm is above max_norm, exactly 1 below', async () => {
    const g = hostGrads([1000, 2000, 31], makeRng(5));
    const ref = refNorms(g);
    const ts = upload(rt, g);
    for (const maxNorm of [3, ref.norm * 2]) {
      const clip = new GradClipper(rt, { maxNorm });
      clip.recordGrads(ts);
      const st = await clip.read();
      const want = Math.min(1, maxNorm / (ref.norm + 1e-6));
      expectRel('clip coef', 'global', [st.clipCoef], [want], BOUND);
      expectRel('clip coef', 'multipliers', st.multipliers, [want, want, want], BOUND);
      if (want === 1) expect(st.clipCoef).toBe(1);
      else expect(st.clipCoef).toBeLessThan(1);
      expect(clipCoefficient(ref.norm, maxNorm)).toBeCloseTo(want, 15);
      clip.dispose();
    }
    for (const t of ts) t.dispose();
  });

  it('per tensor: each tensor by its own norm (DINO v1), unclipped tensors keep 1', async () => {
    const g = hostGrads([500, 800, 3], makeRng(6));
    g[2] = Float32Array.from([0.1, 0.2, 0.3]); // norm < 1
    const ref = refNorms(g);
    const ts = upload(rt, g);
    const clip = new GradClipper(rt, { maxNorm: 1, mode: 'per-tensor' });
    clip.recordGrads(ts);
    const st = await clip.read();
    const want = ref.tensorNorms.map((n) => Math.min(1, 1 / (n + 1e-6)));
    expectRel('clip coef', 'per tensor', st.multipliers, want, BOUND);
    expect(st.multipliers[2]).toBe(1);
    expectRel('grad norm', 'global (per-tensor mode)', [st.norm], [ref.norm], BOUND);
    clip.dispose();
    for (const t of ts) t.dispose();
  });

  it('invScale removes a power-of-two loss scale exactly (bitwise the unscaled result)', async () => {
    const g = hostGrads([3000, 77, 5000], makeRng(7));
    const scaled = g.map((a) => a.map((x) => x * 1024));
    const a = upload(rt, g);
    const b = upload(rt, scaled);
    const ca = new GradClipper(rt, { maxNorm: 1 });
    const cb = new GradClipper(rt, { maxNorm: 1 });
    ca.recordGrads(a);
    cb.recordGrads(b, { invScale: 1 / 1024 });
    const sa = await ca.read();
    const sb = await cb.read();
    expect(sb.norm).toBe(sa.norm);
    expect(bits(sb.tensorNorms)).toEqual(bits(sa.tensorNorms));
    // The multiplier for the scaled gradients carries the 1/1024.
    expect(bits(sb.multipliers)).toEqual(bits(sa.multipliers.map((x) => x / 1024)));
    for (const x of [ca, cb]) x.dispose();
    for (const t of [...a, ...b]) t.dispose();
  });
});

describe('determinism and pieces', () => {
  it('the same gradients give bitwise the same results, run after run', async () => {
    const g = hostGrads(SIZES, makeRng(8));
    const ts = upload(rt, g);
    const clip = new GradClipper(rt, { maxNorm: 1, mode: 'per-tensor' });
    const runs: number[][] = [];
    for (let k = 0; k < 4; k++) {
      const control = clip.recordGrads(ts);
      runs.push(bits(new Float32Array(await rt.read(control.buffer, 0, 4 * (4 + 3 * SIZES.length)))));
    }
    for (const r of runs) expect(r).toEqual(runs[0]);
    // A fresh clipper (new buffers) agrees too.
    const other = new GradClipper(rt, { maxNorm: 1, mode: 'per-tensor' });
    const control = other.recordGrads(ts);
    expect(bits(new Float32Array(await rt.read(control.buffer, 0, 4 * (4 + 3 * SIZES.length))))).toEqual(runs[0]);
    clip.dispose();
    other.dispose();
    for (const t of ts) t.dispose();
  });

  it('tensors over the binding limit, on a grid split over dimensions, give bitwise the same norms', async () => {
    const small = await Runtime.create({ maxStorageBufferBindingSize: 4 * GRAD_NORM_CHUNK * 2, maxWorkgroupsPerDimension: 3, maxBatch: 64 });
    try {
      const g = hostGrads([50_001, 8192, 3, 40_000], makeRng(9));
      const whole = new GradClipper(rt);
      const split = new GradClipper(small);
      const a = upload(rt, g);
      const b = upload(small, g);
      whole.recordGrads(a);
      split.recordGrads(b);
      const sa = await whole.read();
      const sb = await split.read();
      expectRel('grad norm', 'pieces', [sb.norm], [refNorms(g).norm], BOUND);
      expect(sb.norm).toBe(sa.norm);
      expect(bits(sb.tensorNorms)).toEqual(bits(sa.tensorNorms));
      whole.dispose();
      split.dispose();
      for (const t of [...a, ...b]) t.dispose();
    } finally {
      small.dispose();
    }
  });

  it('releases its buffers', async () => {
    const before = rt.memory().inUse;
    const ts = upload(rt, hostGrads([100, 200], makeRng(10)));
    const clip = new GradClipper(rt);
    clip.recordGrads(ts);
    await clip.read();
    clip.recordGrads([ts[0]!]); // a new layout reallocates
    await clip.read();
    clip.dispose();
    for (const t of ts) t.dispose();
    await rt.sync();
    expect(rt.memory().inUse).toBe(before);
  });
});
