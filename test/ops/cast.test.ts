/**
 * cast between f32 and f16 storage (needs the adapter's shader-f16), forward and backward.
 * The reference rounding is test/support/compare.ts `roundF16` (round to nearest, ties to even),
 * written independently of reef's host-side conversion.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { testRuntime } from '../support/runtime';
import { checkOp, download, expectNoLeak, printErrorTable, roundTo, upload } from '../support/compare';
import { type Arr, arr, makeRng, type Rng } from '../ref/array';
import { backward, cast, type Runtime, type Tensor } from '../../src/index';

const rt: Runtime = await testRuntime();
if (!rt.caps.f16) console.log('cast tests skipped: this adapter has no shader-f16 feature');
afterAll(() => printErrorTable('cast'));

/** f16 → f32 is exact, and so is casting a gradient that is already f16-valued. */
const EXACT = 0;
/**
 * f32 → f16 rounds. WGSL lets the conversion pick either neighbour, so the portable guarantee is
 * one f16 ulp per element (checked separately); relative to max|expected| that is ≤ 2⁻¹⁰.
 */
const TO_F16 = 1e-3;

/** Values over many binades of the f16 range: subnormals (< 6.1e-5) up to ~6.5e4. */
function wideRange(shape: number[], rng: Rng): Arr {
  const x = arr(shape);
  for (let i = 0; i < x.data.length; i++) {
    const mag = 2 ** (rng.uniform() * 40 - 24); // 6e-8 … 6.5e4
    x.data[i] = Math.fround((rng.uniform() < 0.5 ? -1 : 1) * Math.min(mag * (1 + rng.uniform()), 65000));
  }
  return x;
}

/** f16 spacing at |v| (subnormal spacing 2⁻²⁴ below 2⁻¹⁴). */
function ulp16(v: number): number {
  const a = Math.abs(v);
  return a < 2 ** -14 ? 2 ** -24 : 2 ** (Math.floor(Math.log2(a)) - 10);
}

const SHAPES = [[1], [3], [7, 5], [127, 65]];

describe.skipIf(!rt.caps.f16)('cast', () => {
  SHAPES.forEach((shape, i) => {
    it(`f32 → f16 [${shape}]`, async () => {
      const rng = makeRng(100 + i);
      await checkOp(rt, {
        op: 'cast f32→f16',
        inputs: [wideRange(shape, rng)],
        names: ['x'],
        dtype: 'f32',
        outDtype: 'f16',
        rng,
        gpu: ([t]) => cast(t!, 'f16'),
        ref: ([r]) => roundTo(r!, 'f16'),
        vjp: (_, g) => [g], // g holds f16 values; casting it to f32 is exact
        bound: TO_F16,
        gradBound: EXACT,
      });
    });

    it(`f16 → f32 [${shape}]`, async () => {
      const rng = makeRng(150 + i);
      await checkOp(rt, {
        op: 'cast f16→f32',
        inputs: [roundTo(wideRange(shape, rng), 'f16')],
        names: ['x'],
        dtype: 'f16',
        outDtype: 'f32',
        rng,
        gpu: ([t]) => cast(t!, 'f32'),
        ref: ([r]) => r!,
        vjp: (_, g) => [roundTo(g, 'f16')], // the f32 gradient is rounded to f16
        bound: EXACT,
        gradBound: TO_F16,
      });
    });
  });

  it('f32 → f16: every element is within one f16 ulp, and ties round to even (as measured here)', async () => {
    const rng = makeRng(200);
    const xs = wideRange([4096], rng);
    // exact midpoints between neighbouring f16 values, to see the tie rule
    for (let i = 0; i < 64; i++) {
      const base = roundTo(arr([1], [xs.data[i]!]), 'f16').data[0]!;
      xs.data[i] = Math.fround(base + Math.sign(base) * ulp16(base) / 2);
    }
    const t = upload(rt, xs);
    const h = cast(t, 'f16');
    try {
      const got = await download(h);
      const want = roundTo(xs, 'f16').data;
      let worstUlps = 0;
      let mismatches = 0;
      for (let i = 0; i < xs.data.length; i++) {
        worstUlps = Math.max(worstUlps, Math.abs(got[i]! - xs.data[i]!) / ulp16(xs.data[i]!));
        if (got[i] !== want[i]) mismatches++;
      }
      expect(worstUlps).toBeLessThanOrEqual(1);
      // lavapipe rounds to nearest even; another implementation may legally differ here
      if (rt.caps.isCpu) expect(mismatches).toBe(0);
    } finally {
      t.dispose();
      h.dispose();
    }
  });

  it('cast to the same type shares the data; inUse returns to its starting value', async () => {
    await expectNoLeak(rt, async () => {
      const rng = makeRng(300);
      const xs = wideRange([7, 5], rng);
      const x = upload(rt, xs, { requiresGrad: true });
      const live: Tensor[] = [x];
      try {
        const same = cast(x, 'f32');
        const h = cast(x, 'f16');
        const back = cast(h, 'f32');
        live.push(same, h, back);
        expect(Array.from(await download(same))).toEqual(Array.from(xs.data));
        expect(Array.from(await download(back))).toEqual(Array.from(roundTo(xs, 'f16').data));
        const g = upload(rt, xs);
        live.push(g);
        backward(back, g);
        // d back / d x: f32 → f16 → f32 of the gradient
        expect(Array.from(await download(x.grad!))).toEqual(Array.from(roundTo(xs, 'f16').data));
      } finally {
        x.grad?.dispose();
        for (const t of live) t.dispose();
      }
    });
  });
});
