/**
 * conv3d (stride 1, zero padding, no bias, channels-first) on the GPU against the float64 reference
 * in test/ref/conv3d.ts: forward, dx and dW, for k = 3 and k = 1, odd sizes, a size-1 volume, one
 * input channel, a batch of two, non-default padding, few output positions (the narrow kernels), dW summed over several chunks, grids split
 * over several dispatches, bitwise-deterministic gradients and shape errors — for each variant
 * (gemm; rows and rows-sg, the CPU-adapter kernels, also at UNETR-like shapes), and which variant
 * is chosen per adapter and shape.
 *
 * Error model: every output is a dot product of K terms accumulated in f32 by fma in a fixed order
 * (forward K = Ci·k³, dx K = Co·k³, dW K = B·D·H·W, the last as per-chunk sums then a sum over
 * chunks). Errors are max|a−e| / max|e|, so with N(0,1) inputs the bound is a few × 1e-7·√K.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../../src/gpu/runtime';
import { conv3d, conv3dVariant, CONV3D_VARIANTS, rowsGroups, type Conv3dVariant } from '../../src/ops/conv3d';
import { backward, ReefError, tensor, type Tensor } from '../../src/index';
import { makeRng, type Rng } from '../ref/array';
import { checkVjp } from '../ref/finite-diff';
import { conv3d as refConv3d, conv3dBackward } from '../ref/conv3d';
import { checkOp, expectNoLeak, printErrorTable, randnT, upload } from '../support/compare';
import { testRuntime } from '../support/runtime';

const rt: Runtime = await testRuntime();
afterAll(() => printErrorTable('conv3d'));

/** Bound for an f32 dot product of K terms: C · 1e-7 · √K (worst measured C ≈ 0.55 forward, 0.6 gradients). */
const C_FWD = 1.5;
const C_GRAD = 1.5;
const bound = (K: number, c: number) => c * 1e-7 * Math.sqrt(K);

const F16_BOUND = 2e-3;

interface Case {
  x: [number, number, number, number, number];
  co: number;
  k: number;
  padding?: number;
}

function runCase(r: Runtime, c: Case, rng: Rng, op = 'conv3d', variant?: Conv3dVariant, dtype: 'f32' | 'f16' = 'f32'): Promise<void> {
  const [B, Ci, D, H, W] = c.x;
  const K = c.k ** 3;
  const pad = c.padding ?? Math.floor(c.k / 2);
  const M = B * (D + 2 * pad - c.k + 1) * (H + 2 * pad - c.k + 1) * (W + 2 * pad - c.k + 1);
  return expectNoLeak(r, () =>
    checkOp(r, {
      op: `${op}${variant ? ` [${variant}]` : ''} k=${c.k}`,
      inputs: [randnT(c.x, rng, 1, dtype), randnT([c.co, Ci, c.k, c.k, c.k], rng, 1, dtype)],
      names: ['x', 'weight'],
      dtype,
      gpu: ([x, w]) => conv3d(x!, w!, { ...(c.padding === undefined ? {} : { padding: c.padding }), ...(variant ? { variant } : {}) }),
      ref: ([x, w]) => refConv3d(x!, w!, pad),
      vjp: ([x, w], g) => {
        const r = conv3dBackward(x!, w!, g, pad);
        return [r.dx, r.dw];
      },
      // f16: inputs and gradients are f16 values, sums run in f32, each result is rounded to f16 once
      // on store (2⁻¹¹ relative) and dW's partial blocks are added in f16.
      bound: dtype === 'f16' ? F16_BOUND : bound(Ci * K, C_FWD),
      gradBound: dtype === 'f16' ? F16_BOUND : [bound(c.co * K, C_GRAD), bound(M, C_GRAD)],
      rng,
    }),
  );
}

describe('conv3d reference', () => {
  const cases: { x: number[]; co: number; k: number; pad?: number }[] = [
    { x: [1, 2, 3, 4, 3], co: 3, k: 3 },
    { x: [2, 3, 2, 3, 2], co: 2, k: 1 },
    { x: [1, 2, 4, 3, 3], co: 2, k: 3, pad: 0 },
    { x: [1, 1, 2, 2, 3], co: 2, k: 3, pad: 2 },
  ];
  cases.forEach((c, i) => {
    it(`VJP matches central differences: [${c.x}]→${c.co}, k=${c.k}${c.pad !== undefined ? `, padding ${c.pad}` : ''}`, () => {
      const rng = makeRng(10 + i);
      const x = randnT(c.x, rng);
      const w = randnT([c.co, c.x[1]!, c.k, c.k, c.k], rng);
      const errs = checkVjp({
        f: ([xx, ww]) => refConv3d(xx!, ww!, c.pad),
        inputs: [x, w],
        vjp: ([xx, ww], g) => {
          const r = conv3dBackward(xx!, ww!, g, c.pad);
          return [r.dx, r.dw];
        },
        rng,
      });
      for (const e of errs) expect(e).toBeLessThan(1e-7);
    });
  });
});

describe('conv3d on the GPU', () => {
  const cases: Case[] = [
    { x: [1, 3, 5, 4, 7], co: 5, k: 3 },
    { x: [1, 3, 5, 4, 7], co: 5, k: 1 },
    { x: [1, 2, 1, 1, 1], co: 4, k: 3 }, // size-1 volume: only the centre tap is inside
    { x: [1, 1, 6, 5, 4], co: 8, k: 3 }, // one input channel (the first UNETR block)
    { x: [2, 4, 3, 5, 6], co: 6, k: 3 }, // batch of two
    { x: [2, 3, 4, 4, 4], co: 3, k: 1 },
    { x: [1, 2, 5, 6, 7], co: 3, k: 3, padding: 0 },
    { x: [1, 2, 3, 2, 4], co: 9, k: 3, padding: 2 },
    { x: [2, 2, 16, 12, 11], co: 4, k: 3 }, // dW over 4 chunks of positions
    { x: [1, 8, 12, 10, 9], co: 8, k: 3 }, // larger
    { x: [1, 20, 6, 7, 5], co: 17, k: 1 }, // several channel tiles
  ];
  for (const variant of CONV3D_VARIANTS) {
    cases.forEach((c, i) => {
      it(`${variant}: [${c.x}]→${c.co}, k=${c.k}${c.padding !== undefined ? `, padding ${c.padding}` : ''}: forward, dx, dW`, async () => {
        await runCase(rt, c, makeRng(100 + i), 'conv3d', variant);
      });
    });
  }

  // The rows kernels at UNETR-like shapes with odd sides: one input channel (enc0), 12 and 24
  // channels, channel groups that pad (13, 7 → vec4 groups), rows of fewer outputs than a lane's
  // run, dW chunks of several rows with empty trailing chunks (300 rows over 256 chunks).
  const rows: Case[] = [
    { x: [2, 1, 9, 7, 11], co: 12, k: 3 },
    { x: [1, 1, 9, 7, 11], co: 12, k: 1 },
    { x: [2, 12, 7, 5, 9], co: 12, k: 3 },
    { x: [1, 24, 5, 3, 6], co: 24, k: 3 },
    { x: [1, 5, 6, 5, 3], co: 13, k: 3 },
    { x: [1, 13, 4, 6, 3], co: 7, k: 3, padding: 0 },
    { x: [2, 1, 10, 15, 5], co: 3, k: 3 },
    { x: [1, 3, 5, 6, 13], co: 6, k: 3, padding: 2 },
  ];
  for (const variant of ['rows', 'rows-sg'] as const) {
    rows.forEach((c, i) => {
      it(`${variant}: [${c.x}]→${c.co}, k=${c.k}${c.padding !== undefined ? `, padding ${c.padding}` : ''}: forward, dx, dW`, async () => {
        await runCase(rt, c, makeRng(300 + i), 'conv3d', variant);
      });
    });
  }

  // Every variant with f16 storage (the encoders' activations in f16 training).
  const halfCases: Case[] = [
    { x: [2, 1, 9, 7, 11], co: 12, k: 3 },
    { x: [1, 12, 5, 6, 7], co: 12, k: 3 },
    { x: [1, 3, 5, 6, 13], co: 6, k: 3, padding: 2 },
    { x: [1, 8, 12, 10, 9], co: 8, k: 1 },
  ];
  for (const variant of CONV3D_VARIANTS) {
    halfCases.forEach((c, i) => {
      it(`f16 ${variant}: [${c.x}]→${c.co}, k=${c.k}${c.padding !== undefined ? `, padding ${c.padding}` : ''}: forward, dx, dW`, async (ctx) => {
        if (!rt.caps.f16) {
          console.log('f16 conv3d skipped: this adapter has no shader-f16');
          return ctx.skip();
        }
        await runCase(rt, c, makeRng(400 + i), 'conv3d f16', variant, 'f16');
      });
    });
  }
  it('f16 narrow kernels (few positions): [2,5,2,3,2]→70, k=3: forward, dx, dW', async (ctx) => {
    if (!rt.caps.f16) {
      console.log('f16 conv3d narrow skipped: this adapter has no shader-f16');
      return ctx.skip();
    }
    await runCase(rt, { x: [2, 5, 2, 3, 2], co: 70, k: 3 }, makeRng(420), 'conv3d f16 narrow', undefined, 'f16');
  });

  // Up to 32 output positions the forward and dx run the narrow kernels (lanes over channels).
  const narrow: Case[] = [
    { x: [2, 5, 2, 3, 2], co: 70, k: 3 }, // batch of two, two workgroups of channels
    { x: [1, 3, 3, 3, 3], co: 9, k: 3, padding: 0 }, // one output position; dx (27 positions) pads 2
    { x: [1, 4, 2, 2, 2], co: 6, k: 1 },
    { x: [1, 66, 1, 1, 1], co: 65, k: 3 }, // a /32 map of a 32³ crop: 26 of 27 taps outside
  ];
  narrow.forEach((c, i) => {
    it(`few positions (narrow kernels): [${c.x}]→${c.co}, k=${c.k}${c.padding !== undefined ? `, padding ${c.padding}` : ''}: forward, dx, dW`, async () => {
      await runCase(rt, c, makeRng(160 + i), 'conv3d narrow');
    });
  });

  it('only the weight requires grad; no grad at all records nothing', async () => {
    const rng = makeRng(150);
    await expectNoLeak(rt, async () => {
      const x = upload(rt, randnT([1, 2, 3, 4, 5], rng));
      const w = upload(rt, randnT([3, 2, 3, 3, 3], rng), { requiresGrad: true });
      const y = conv3d(x, w);
      const g = upload(rt, randnT(y.shape, rng));
      backward(y, g);
      g.dispose();
      expect(x.grad).toBeNull();
      expect(w.grad).not.toBeNull();
      w.grad!.dispose();
      const w1 = upload(rt, randnT([3, 2, 1, 1, 1], rng));
      const y2 = conv3d(x, w1);
      expect(y2.gradFn).toBeNull();
      for (const t of [x, w, w1, y, y2]) t.dispose();
    });
  });

  it.each(CONV3D_VARIANTS)('%s: two backward passes give bitwise equal dx and dW', async (variant) => {
    const rng = makeRng(160);
    const xs = randnT([2, 3, 11, 12, 10], rng);
    const ws = randnT([5, 3, 3, 3, 3], rng);
    const gs = randnT([2, 5, 11, 12, 10], rng);
    const grads = async () => {
      const x = upload(rt, xs, { requiresGrad: true });
      const w = upload(rt, ws, { requiresGrad: true });
      const g = upload(rt, gs);
      const y = conv3d(x, w, { variant });
      backward(y, g);
      const out = [await x.grad!.read(), await w.grad!.read()];
      for (const t of [x.grad!, w.grad!, x, w, g, y]) t.dispose();
      return out.map((a) => new Uint32Array(Float32Array.from(a).buffer));
    };
    await expectNoLeak(rt, async () => {
      const [dx1, dw1] = await grads();
      const [dx2, dw2] = await grads();
      expect(dx2).toEqual(dx1);
      expect(dw2).toEqual(dw1);
    });
  });

  it('rejects bad shapes with both shapes in the message', () => {
    const t = (shape: number[]): Tensor => tensor(rt, new Float32Array(shape.reduce((p, d) => p * d, 1)), shape);
    const bad: [number[], number[], { padding?: number }, RegExp][] = [
      [[2, 3, 4, 4], [5, 3, 3, 3, 3], {}, /channels-first/],
      [[1, 3, 4, 4, 4], [5, 3, 3, 3], {}, /\[Co, Ci, k, k, k\]/],
      [[1, 3, 4, 4, 4], [5, 2, 3, 3, 3], {}, /takes 2 input channels, the input has 3/],
      [[1, 3, 4, 4, 4], [5, 3, 3, 3, 1], {}, /cubic/],
      [[1, 3, 4, 4, 4], [5, 3, 3, 3, 3], { padding: 3 }, /padding 3/],
      [[1, 3, 1, 4, 4], [5, 3, 3, 3, 3], { padding: 0 }, /no output positions/],
    ];
    for (const [xs, ws, opts, why] of bad) {
      const x = t(xs);
      const w = t(ws);
      let err: unknown;
      try {
        conv3d(x, w, opts).dispose();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ReefError);
      const msg = (err as Error).message;
      expect(msg).toMatch(why);
      expect(msg).toContain(x.describe());
      expect(msg).toContain(w.describe());
      x.dispose();
      w.dispose();
    }
  });
});

describe('conv3d with grids split over several dispatches (10 workgroups per dimension)', () => {
  let small: Runtime;
  beforeAll(async () => {
    small = await Runtime.create({ maxWorkgroupsPerDimension: 10, maxBatch: 64 });
  });
  afterAll(() => small.dispose());

  for (const variant of CONV3D_VARIANTS) {
    it(`${variant}: [1,96,3,3,3]→84: channel tiles (forward, dx) and dW column and channel tiles split`, async () => {
      await runCase(small, { x: [1, 96, 3, 3, 3], co: 84, k: 3 }, makeRng(200), 'conv3d split', variant);
    });

    it(`${variant}: [1,1,24,24,20]→2: position tiles and dW chunks split`, async () => {
      await runCase(small, { x: [1, 1, 24, 24, 20], co: 2, k: 3 }, makeRng(201), 'conv3d split', variant);
    });
  }
});

describe('conv3d rows kernels over several dispatches (2 workgroups per dimension)', () => {
  let tiny: Runtime;
  beforeAll(async () => {
    tiny = await Runtime.create({ maxWorkgroupsPerDimension: 2, maxBatch: 64 });
  });
  afterAll(() => tiny.dispose());

  // rows-sg dW: 40 lanes × 30 chunks over dispatches of 8 workgroups; forward and dx: 2 per row of tiles.
  for (const variant of ['rows', 'rows-sg'] as const) {
    it(`${variant}: [1,12,5,6,7]→12`, async () => {
      await runCase(tiny, { x: [1, 12, 5, 6, 7], co: 12, k: 3 }, makeRng(202), 'conv3d split', variant);
    });
  }
});

describe('conv3d variant choice', () => {
  const d = (B: number, Ci: number, Co: number, side: number, k = 3) => ({ B, Ci, Co, k, in: [side, side, side], out: [side, side, side] });
  const fake = (isCpu: boolean, env: string | undefined, binding = 1 << 30, subgroups = true) =>
    ({
      caps: { isCpu, maxStorageBufferBindingSize: binding, subgroups, subgroupMinSize: 8, subgroupMaxSize: 8 },
      host: { env: (n: string) => (n === 'REEF_CONV3D' ? env : undefined) },
    }) as unknown as Runtime;

  it('rows-sg on CPU adapters (rows without subgroups), gemm on GPUs; narrow maps and tensors over one binding stay on gemm', () => {
    expect(conv3dVariant(fake(true, undefined), d(4, 12, 12, 32))).toBe('rows-sg');
    expect(conv3dVariant(fake(true, undefined), d(4, 1, 12, 32))).toBe('rows-sg');
    expect(conv3dVariant(fake(true, undefined, 1 << 30, false), d(4, 12, 12, 32))).toBe('rows');
    expect(conv3dVariant(fake(false, undefined), d(4, 12, 12, 32))).toBe('gemm');
    expect(conv3dVariant(fake(true, undefined), d(4, 192, 192, 1))).toBe('gemm'); // 4 positions: narrow entries
    expect(conv3dVariant(fake(true, undefined), d(4, 12, 12, 32), 'gemm')).toBe('gemm');
    expect(conv3dVariant(fake(true, undefined, 1 << 20), d(4, 12, 12, 32))).toBe('gemm'); // 6 MiB maps over a 1 MiB binding
    expect(conv3dVariant(fake(true, undefined, 1 << 20), d(4, 12, 12, 32), 'rows')).toBe('gemm');
    expect(conv3dVariant(fake(true, undefined, 1 << 30, false), d(4, 12, 12, 32), 'rows-sg')).toBe('rows');
  });

  it('REEF_CONV3D forces a variant, and a bad value is refused', () => {
    expect(conv3dVariant(fake(false, 'rows'), d(4, 12, 12, 32))).toBe('rows');
    expect(conv3dVariant(fake(false, 'rows'), d(4, 192, 192, 1))).toBe('rows');
    expect(conv3dVariant(fake(false, 'rows-sg'), d(4, 12, 12, 32))).toBe('rows-sg');
    expect(conv3dVariant(fake(true, 'gemm'), d(4, 12, 12, 32))).toBe('gemm');
    expect(() => conv3dVariant(fake(true, 'fast'), d(1, 1, 1, 4))).toThrow(/REEF_CONV3D=fast/);
  });

  it('channel groups of 12, fewer up to 8 channels', () => {
    expect(rowsGroups(12)).toEqual({ V: 3, NG: 1 });
    expect(rowsGroups(24)).toEqual({ V: 3, NG: 2 });
    expect(rowsGroups(13)).toEqual({ V: 3, NG: 2 });
    expect(rowsGroups(1)).toEqual({ V: 1, NG: 1 });
    expect(rowsGroups(7)).toEqual({ V: 2, NG: 1 });
  });
});
