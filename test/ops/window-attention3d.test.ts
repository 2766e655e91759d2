/**
 * Fused 3D shifted-window attention against a float64 reference written from the definition
 * (MONAI's window attention between the qkv and proj Linears, as in test/ref/swin.ts but taking
 * q, k, v directly; padded tokens' q/k/v are the qkv bias). Its VJP is written with plain loops
 * and checked by finite differences; the GPU gradients of both kernel variants (tiled and rows,
 * forward and backward) are compared with it, and two backward passes must agree bitwise.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { testRuntime } from '../support/runtime';
import { checkOp, download, expectNoLeak, printErrorTable, randnT, upload } from '../support/compare';
import { type Arr, arr, makeRng } from '../ref/array';
import { checkVjp } from '../ref/finite-diff';
import { backward, type Runtime, type Tensor } from '../../src/index';
import { dqRowOrder, windowAttention3d, WINDOW_ATTENTION_VARIANTS, type WindowAttentionVariant } from '../../src/ops/window-attention3d';
import { stageRelativeIndex, windowAndShift, type Vec3 } from '../../src/models/swin3d/window-geometry';
import { refWindowAttention, type AttentionGeometry } from '../ref/window-attention';

const rt: Runtime = await testRuntime();
afterAll(() => printErrorTable('window attention 3d'));

const FWD = 1e-5;
const GRAD = 1e-5;

type Geo = AttentionGeometry;
const refAttention = refWindowAttention;

function inputs(shape: number[], heads: number, seed: number, tableRows = 2197): Arr[] {
  const rng = makeRng(seed);
  const C = shape[4]!;
  return [randnT(shape, rng), randnT(shape, rng), randnT(shape, rng), randnT([3 * C], rng), randnT([tableRows, heads], rng, 0.5)];
}

const gpuOp = (geo: Geo, variant?: WindowAttentionVariant) => (ts: Tensor[]) =>
  windowAttention3d({ q: ts[0]!, k: ts[1]!, v: ts[2]!, qkvBias: ts[3]!, table: ts[4]!, heads: geo.heads, window: geo.win, shift: geo.shift, configuredWindow: geo.cfg, variant });

// [B, D, H, W], shifted block or not, head width (default 3 for tiled, 4 for rows: the rows
// kernels read vec4s, so 3 would fall back to tiled), configured window (default 7³).
const CASES: { size: [number, number, number, number]; shifted: boolean; hd?: number; cfg?: Vec3 }[] = [
  { size: [1, 9, 3, 8], shifted: true },    // window [7,3,7], shift [3,0,3]: padding on D and W, mask
  { size: [1, 9, 3, 8], shifted: false },
  { size: [2, 8, 9, 2], shifted: true },    // window [7,7,2], shift [3,3,0]: padding on H, two batches
  { size: [1, 3, 2, 3], shifted: false },   // stage-4-like: window = size, sliced index (n = 18: a partial 7-token row)
  { size: [1, 3, 2, 3], shifted: false, hd: 16 },  // the model's head width
  { size: [2, 9, 3, 8], shifted: true, hd: 16 },   // … with padding, mask and two batches
  { size: [1, 8, 8, 8], shifted: true },    // full 7³ windows (n = 343), shift [3,3,3]
  { size: [1, 5, 4, 6], shifted: true, cfg: [4, 3, 5] },  // another configured window: window [4,3,5], shift [2,1,2]
];

const tableRowsOf = (cfg: Vec3) => (2 * cfg[0] - 1) * (2 * cfg[1] - 1) * (2 * cfg[2] - 1);

describe.each(WINDOW_ATTENTION_VARIANTS)('windowAttention3d (%s kernels)', (variant) => {
  CASES.forEach(({ size, shifted, hd = variant === 'rows' ? 4 : 3, cfg = [7, 7, 7] }, ci) => {
    const heads = 2;
    const C = heads * hd;
    const shape = [...size, C];
    const half = cfg.map((c) => Math.floor(c / 2)) as unknown as Vec3;
    const ws = windowAndShift([size[1], size[2], size[3]], cfg, half);
    const geo: Geo = { heads, win: ws.window, shift: shifted ? ws.shift : [0, 0, 0], cfg };
    // Lavapipe compiles the tiled backward for a 16-wide head for ~25 s, so it is checked at width 3.
    const grads = variant === 'rows' || hd <= 4;
    it(`[${shape}] window [${geo.win}] shift [${geo.shift}]: forward${grads ? ' and gradients' : ''}`, async () => {
      await expectNoLeak(rt, () =>
        checkOp(rt, {
          op: `windowAttention3d ${variant}`,
          inputs: inputs(shape, heads, 10 + ci, tableRowsOf(cfg)),
          names: ['q', 'k', 'v', 'qkvBias', 'table'],
          rng: makeRng(50 + ci),
          gpu: gpuOp(geo, variant),
          ref: (xs) => refAttention(xs, geo).out,
          vjp: grads ? (xs, g) => refAttention(xs, geo, g).grads : undefined,
          bound: FWD,
          gradBound: GRAD,
        }),
      );
    });
  });

  // f16 storage (the encoders' activations in f16 training): inputs are f16 values, softmax and sums
  // in f32, outputs and gradients rounded to f16 on store.
  it('f16: [2,9,3,8] shifted, padded, masked: forward and gradients', async (ctx) => {
    if (!rt.caps.f16) {
      console.log('f16 window attention skipped: this adapter has no shader-f16');
      return ctx.skip();
    }
    const hd = variant === 'rows' ? 4 : 3;
    const heads = 2;
    const cfg: Vec3 = [7, 7, 7];
    const ws = windowAndShift([9, 3, 8], cfg, [3, 3, 3]);
    const geo: Geo = { heads, win: ws.window, shift: ws.shift, cfg };
    const rng = makeRng(90);
    const shape = [2, 9, 3, 8, heads * hd];
    const C = heads * hd;
    await expectNoLeak(rt, () =>
      checkOp(rt, {
        op: `windowAttention3d ${variant} f16`,
        inputs: [randnT(shape, rng, 1, 'f16'), randnT(shape, rng, 1, 'f16'), randnT(shape, rng, 1, 'f16'), randnT([3 * C], rng, 1, 'f16'), randnT([tableRowsOf(cfg), heads], rng, 0.5, 'f16')],
        names: ['q', 'k', 'v', 'qkvBias', 'table'],
        dtype: 'f16',
        rng,
        gpu: gpuOp(geo, variant),
        ref: (xs) => refAttention(xs, geo).out,
        vjp: (xs, g) => refAttention(xs, geo, g).grads,
        bound: 2e-3,
        gradBound: 4e-3,
      }),
    );
  });

  it('backward is deterministic (two passes bitwise equal)', async () => {
    const size = [2, 9, 3, 8];
    const shape = [...size, 8];
    const ws = windowAndShift([9, 3, 8], [7, 7, 7], [3, 3, 3]);
    const geo: Geo = { heads: 2, win: ws.window, shift: ws.shift, cfg: [7, 7, 7] };
    const xs = inputs(shape, 2, 77);
    const g = randnT(shape, makeRng(78));
    await expectNoLeak(rt, async () => {
      const runs: Float64Array[][] = [];
      for (let r = 0; r < 2; r++) {
        const ts = xs.map((x) => upload(rt, x, { requiresGrad: true }));
        const gt = upload(rt, g);
        const out = gpuOp(geo, variant)(ts);
        backward(out, gt);
        runs.push(await Promise.all(ts.map((t) => download(t.grad!))));
        for (const t of ts) {
          t.grad!.dispose();
          t.grad = null;
          t.dispose();
        }
        out.dispose();
        gt.dispose();
      }
      for (let i = 0; i < 5; i++) expect(Buffer.from(runs[0]![i]!.buffer).equals(Buffer.from(runs[1]![i]!.buffer))).toBe(true);
    });
  });

  it('q, k, v read in place from the packed qkv projection: output and gradients bitwise those of three tensors', async () => {
    const size = [2, 9, 3, 8];
    const C = 8;
    const shape = [...size, C];
    const ws = windowAndShift([9, 3, 8], [7, 7, 7], [3, 3, 3]);
    const geo: Geo = { heads: 2, win: ws.window, shift: ws.shift, cfg: [7, 7, 7] };
    const xs = inputs(shape, 2, 91);
    const g = randnT(shape, makeRng(92));
    const tokens = xs[0]!.data.length / C;
    const packed = arr([...size, 3 * C]);
    for (let t = 0; t < tokens; t++) for (let p = 0; p < 3; p++) packed.data.set(xs[p]!.data.subarray(t * C, (t + 1) * C), t * 3 * C + p * C);
    await expectNoLeak(rt, async () => {
      const sep = xs.map((x) => upload(rt, x, { requiresGrad: true }));
      const qkv = [packed, xs[3]!, xs[4]!].map((x) => upload(rt, x, { requiresGrad: true }));
      const gt = upload(rt, g);
      const outSep = gpuOp(geo, variant)(sep);
      const outPacked = windowAttention3d({ qkv: qkv[0]!, qkvBias: qkv[1]!, table: qkv[2]!, heads: 2, window: geo.win, shift: geo.shift, configuredWindow: geo.cfg, variant });
      expect([...outPacked.shape]).toEqual(shape);
      const same = (a: Float64Array, b: Float64Array) => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));
      expect(same(await download(outPacked), await download(outSep))).toBe(true);
      backward(outSep, gt);
      backward(outPacked, gt);
      const dSep = await Promise.all(sep.map((t) => download(t.grad!)));
      const dPacked = await Promise.all(qkv.map((t) => download(t.grad!)));
      const joined = new Float64Array(packed.data.length);
      for (let t = 0; t < tokens; t++) for (let p = 0; p < 3; p++) joined.set(dSep[p]!.subarray(t * C, (t + 1) * C), t * 3 * C + p * C);
      expect(same(dPacked[0]!, joined)).toBe(true);
      expect(same(dPacked[1]!, dSep[3]!)).toBe(true);
      expect(same(dPacked[2]!, dSep[4]!)).toBe(true);
      for (const t of [...sep, ...qkv]) {
        t.grad!.dispose();
        t.grad = null;
        t.dispose();
      }
      for (const t of [outSep, outPacked, gt]) t.dispose();
    });
  });
});

describe('windowAttention3d', () => {
  it('reference VJP agrees with finite differences', () => {
    const geo: Geo = { heads: 2, win: [2, 2, 3], shift: [1, 0, 1], cfg: [2, 2, 3] };
    const xs = inputs([1, 3, 2, 4, 4], 2, 7);
    xs[4] = randnT([3 * 3 * 5, 2], makeRng(8), 0.5);
    const errs = checkVjp({ f: (a) => refAttention(a, geo).out, inputs: xs, vjp: (a, g) => refAttention(a, geo, g).grads, rng: makeRng(9), h: 1e-5 });
    for (const e of errs) expect(e).toBeLessThan(1e-6);
  });
});

describe('rows backward: the order of dqTable query rows', () => {
  it('is a permutation that puts rows padded in more windows last (16³ grid, window 7: 27 windows, 2 real rows per axis at the edge)', () => {
    const p = { D: 16, H: 16, W: 16, wd: 7, wh: 7, ww: 7, nwh: 3, nww: 3, sd: 0, sh: 0, sw: 0, Dp: 21, Hp: 21, Wp: 21, n: 343, nWin: 27 };
    const order = dqRowOrder(p, 7, 49)!;
    expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: 49 }, (_, i) => i));
    // Never padding (rz, ry < 2) first; then rows padded in the 9 y-edge or the 9 z-edge windows, by
    // row; then the 25 rows padded in all 15 edge windows.
    expect(order.slice(0, 4)).toEqual([0, 1, 7, 8]);
    expect(order.slice(4, 24)).toEqual([2, 3, 4, 5, 6, 9, 10, 11, 12, 13, 14, 15, 21, 22, 28, 29, 35, 36, 42, 43]);
    expect(order.slice(24).every((r) => Math.floor(r / 7) >= 2 && r % 7 >= 2)).toBe(true);
    // Shifted by 3: the padded rows move in the rolled frame, and the order follows them.
    const shifted = dqRowOrder({ ...p, sd: 3, sh: 3, sw: 3 }, 7, 49)!;
    expect(shifted).not.toEqual(order);
    expect([...shifted].sort((a, b) => a - b)).toEqual(Array.from({ length: 49 }, (_, i) => i));
    // More rows than the uniform holds: lane order.
    expect(dqRowOrder(p, 7, 65)).toBeNull();
  });
});
