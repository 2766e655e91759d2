/**
 * Augmentations: windows (range and exact values), flips that invert, Gaussian smoothing (kernel
 * against scipy values, against a brute-force float64 convolution, mean preservation), histogram
 * shift (monotone, endpoints fixed, PCHIP against scipy), and the seeded per-crop pipeline.
 */
import { describe, expect, it } from 'vitest';
import {
  applyWindow,
  augmentCrop,
  flipAxes,
  gaussianKernel,
  gaussianSmooth,
  histogramKnots,
  histogramShift,
  HU_WINDOWS,
  pchipEval,
  pchipSlopes,
} from '../../src/data/augment';
import { windowHu } from '../../src/data/nifti';
import { Rng } from '../../src/data/rng';

function randomData(n: number, seed: number, lo = -1000, hi = 1000): Float32Array {
  const r = Rng.fromKeys(seed);
  return Float32Array.from({ length: n }, () => r.uniform(lo, hi));
}

describe('HU windows', () => {
  it('holds the clinical set', () => {
    expect(HU_WINDOWS).toEqual({ lung: [-1350, 150], abdomen: [-150, 250], liver: [-45, 105], brain: [0, 80], full: [-1000, 1000] });
  });

  it('clips into [0, 1], exact at the window ends and midpoint, equal to windowHu', () => {
    for (const [lo, hi] of Object.values(HU_WINDOWS)) {
      const x = new Float32Array([lo - 500, lo, (lo + hi) / 2, hi, hi + 1, lo + (hi - lo) / 4, -3000, 3000]);
      const want = windowHu(x, lo, hi);
      const got = applyWindow(x.slice(), lo, hi);
      expect(got).toEqual(want);
      expect(Array.from(got.subarray(0, 5))).toEqual([0, 0, 0.5, 1, 1]);
      expect(got[5]).toBe(0.25);
    }
    const r = applyWindow(randomData(1000, 1, -2000, 3000), -150, 250);
    expect(r.every((v) => v >= 0 && v <= 1)).toBe(true);
    expect(() => applyWindow(new Float32Array(1), 5, 5)).toThrow(/need finite lo < hi/);
  });
});

describe('flips', () => {
  const shape = [3, 4, 5];
  it('reverse exactly the flagged axes', () => {
    const x = Float32Array.from({ length: 60 }, (_, i) => i);
    const f = flipAxes(x.slice(), shape, [true, false, true]);
    for (let a = 0; a < 3; a++) for (let b = 0; b < 4; b++) for (let c = 0; c < 5; c++) expect(f[(a * 4 + b) * 5 + c]).toBe(((2 - a) * 4 + b) * 5 + (4 - c));
    const g = flipAxes(x.slice(), shape, [false, true, false]);
    expect(g[(1 * 4 + 0) * 5 + 2]).toBe((1 * 4 + 3) * 5 + 2);
  });

  it('invert themselves for every subset of axes', () => {
    const x = randomData(60, 2);
    for (let m = 0; m < 8; m++) {
      const axes = [!!(m & 1), !!(m & 2), !!(m & 4)];
      expect(flipAxes(flipAxes(x.slice(), shape, axes), shape, axes)).toEqual(x);
    }
  });
});

describe('Gaussian smoothing', () => {
  it('uses the voxel-integrated kernel, normalised (scipy erf reference)', () => {
    const ref: [number, number[]][] = [
      [0.25, [0.9544997379870368, 0.022750131006481558]],
      [1.0, [0.3829275246731448, 0.2417319801096333, 0.060597947727118746, 0.005977076863047464, 0.00022923296362816105]],
      [1.5, [0.2611211546830959, 0.21078918207891506, 0.11086652993847965, 0.03797558138574852, 0.008465554929330987, 0.001227049663156424, 0.00011552466282139293]],
    ];
    for (const [sigma, want] of ref) {
      const k = gaussianKernel(sigma);
      expect(k.length).toBe(want.length);
      k.forEach((w, t) => expect(Math.abs(w - want[t]!)).toBeLessThan(1e-7));
      expect(k.reduce((s, w, t) => s + (t ? 2 : 1) * w, 0)).toBeCloseTo(1, 14);
    }
  });

  /** Brute-force separable-equivalent 3-D convolution with half-sample symmetric borders, in float64. */
  function bruteSmooth(x: Float32Array, shape: number[], sigma: number[]): Float64Array {
    const fold = (i: number, n: number) => {
      const m = ((i % (2 * n)) + 2 * n) % (2 * n);
      return m < n ? m : 2 * n - 1 - m;
    };
    const k = sigma.map((s) => (s > 0 ? gaussianKernel(s) : new Float64Array([1])));
    const [n0, n1, n2] = shape as [number, number, number];
    const out = new Float64Array(x.length);
    const [t0, t1, t2] = k.map((w) => w.length - 1) as [number, number, number];
    for (let a = 0; a < n0; a++)
      for (let b = 0; b < n1; b++)
        for (let c = 0; c < n2; c++) {
          let v = 0;
          for (let u = -t0; u <= t0; u++)
            for (let w = -t1; w <= t1; w++)
              for (let z = -t2; z <= t2; z++) {
                const wt = k[0]![Math.abs(u)]! * k[1]![Math.abs(w)]! * k[2]![Math.abs(z)]!;
                v += wt * x[(fold(a + u, n0) * n1 + fold(b + w, n1)) * n2 + fold(c + z, n2)]!;
              }
          out[(a * n1 + b) * n2 + c] = v;
        }
    return out;
  }

  it('equals a brute-force float64 convolution, including kernels longer than an axis', () => {
    const shape = [6, 3, 7];
    const x = randomData(6 * 3 * 7, 3, 0, 1);
    for (const sigma of [[0.7, 1.5, 0.4], [1.2, 0, 0.3], [0, 0, 1.5]]) {
      const got = gaussianSmooth(x.slice(), shape, sigma);
      const want = bruteSmooth(x, shape, sigma);
      got.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThan(1e-6));
    }
  });

  it('preserves the mean (to 1e-6 relative) and keeps constants constant', () => {
    const shape = [17, 13, 11];
    const n = 17 * 13 * 11;
    const rng = Rng.fromKeys(4);
    for (let rep = 0; rep < 5; rep++) {
      const x = randomData(n, 10 + rep, 0, 1);
      const sigma = [rng.uniform(0.25, 1.5), rng.uniform(0.25, 1.5), rng.uniform(0.25, 1.5)];
      let before = 0;
      for (const v of x) before += v;
      const y = gaussianSmooth(x, shape, sigma, new Float32Array(n));
      let after = 0;
      for (const v of y) after += v;
      expect(Math.abs(after - before) / Math.abs(before)).toBeLessThan(1e-6);
    }
    const c = gaussianSmooth(new Float32Array(n).fill(0.375), shape, [1.5, 1.5, 1.5]);
    for (const v of c) expect(Math.abs(v - 0.375)).toBeLessThan(1e-7);
    expect(() => gaussianSmooth(new Float32Array(5), shape, [1, 1, 1])).toThrow(/5 values for shape/);
  });
});

describe('histogram shift', () => {
  it('PCHIP matches scipy.interpolate.PchipInterpolator', () => {
    const y = [0, 0.05, 0.3, 0.35, 0.6, 0.9, 1];
    const d = pchipSlopes(y);
    const xs = [0, 0.1, 0.25, 0.5, 0.77, 0.95, 1];
    const want = [0.0, 0.02040000000000001, 0.17500000000000002, 0.35, 0.8054691272727275, 0.9878499999999999, 1.0];
    xs.forEach((x, n) => expect(pchipEval(y, d, x)).toBeCloseTo(want[n]!, 12));
    const y2 = [0, 0.5, 0.5, 1];
    const d2 = pchipSlopes(y2);
    [0.1, 0.4, 0.5, 0.6, 0.9].forEach((x, n) => expect(pchipEval(y2, d2, x)).toBeCloseTo([0.21825, 0.5, 0.5, 0.5, 0.78175][n]!, 12));
  });

  it('draws increasing knots and remaps monotonically with 0 → 0 and 1 → 1', () => {
    const rng = Rng.fromKeys(5);
    for (let rep = 0; rep < 20; rep++) {
      const y = histogramKnots(rng, 2 + (rep % 12));
      expect(y[0]).toBe(0);
      expect(y[y.length - 1]).toBe(1);
      for (let i = 1; i < y.length; i++) expect(y[i]!).toBeGreaterThan(y[i - 1]!);
      const x = Float32Array.from({ length: 2001 }, (_, i) => i / 2000);
      const out = histogramShift(x.slice(), y);
      expect(out[0]).toBe(0);
      expect(out[2000]).toBe(1);
      let monotone = true;
      for (let i = 1; i < out.length; i++) monotone &&= out[i]! >= out[i - 1]!;
      expect(monotone).toBe(true);
      // At the knots it passes through them.
      const d = pchipSlopes(y);
      y.forEach((v, i) => expect(pchipEval(y, d, i / (y.length - 1))).toBeCloseTo(v, 12));
    }
    expect(() => histogramShift(new Float32Array(1), [0.1, 1])).toThrow(/start at 0 and end at 1/);
  });
});

describe('augmentCrop', () => {
  const shape = [8, 9, 10];
  const hu = randomData(720, 6, -1200, 1500);

  it('gives values in [0, 1], records what it did, and is deterministic for a seed', () => {
    const run = () => {
      const x = hu.slice();
      const rec = augmentCrop(x, shape, Rng.fromKeys(7), { smoothProb: 1, histogramShiftProb: 1, flipProb: 0.5 });
      return { x, rec };
    };
    const a = run();
    const b = run();
    expect(a.x).toEqual(b.x);
    expect(a.rec).toEqual(b.rec);
    expect(a.x.every((v) => v >= 0 && v <= 1)).toBe(true);
    expect(a.rec.smoothSigma).not.toBeNull();
    expect(a.rec.histogramKnots).not.toBeNull();
    expect(Object.keys(HU_WINDOWS)).toContain(a.rec.window.name);
  });

  it('with everything off but the window equals the window alone', () => {
    const x = hu.slice();
    const rec = augmentCrop(x, shape, Rng.fromKeys(8), { windows: [[-100, 300]], smoothProb: 0, histogramShiftProb: 0, flipProb: 0 });
    expect(rec).toEqual({ window: { name: 'custom', lo: -100, hi: 300 }, histogramKnots: null, smoothSigma: null, flips: [false, false, false] });
    expect(x).toEqual(windowHu(hu, -100, 300));
  });

  it('replays exactly from a saved RNG state', () => {
    const rng = Rng.fromKeys(9);
    augmentCrop(hu.slice(), shape, rng);
    const saved = rng.state();
    const x1 = hu.slice();
    const r1 = augmentCrop(x1, shape, rng);
    const x2 = hu.slice();
    const r2 = augmentCrop(x2, shape, Rng.fromState(saved));
    expect(x2).toEqual(x1);
    expect(r2).toEqual(r1);
  });

  it('rejects bad options clearly', () => {
    expect(() => augmentCrop(hu.slice(), shape, Rng.fromKeys(1), { windows: ['bone' as 'lung'] })).toThrow(/bad window "bone"/);
    expect(() => augmentCrop(hu.slice(), shape, Rng.fromKeys(1), { windows: [] })).toThrow(/window list is empty/);
    expect(() => augmentCrop(hu.slice(), shape, Rng.fromKeys(1), { smoothProb: 2 })).toThrow(/smoothProb must be a probability/);
    expect(() => augmentCrop(hu.slice(), shape, Rng.fromKeys(1), { smoothSigma: [0, 1] })).toThrow(/smoothSigma must satisfy/);
  });
});
