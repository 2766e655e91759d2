/**
 * Intensity and flip augmentations of one crop, all in place on a (D, H, W) Float32Array:
 *
 *  - HU window: clip to a clinical window [lo, hi] and scale to [0, 1] (MONAI ScaleIntensityRange
 *    with clip, in torch's f32 arithmetic; nifti.ts's windowHu is this too);
 *  - histogram shift: a smooth monotone remap of [0, 1] onto itself with fixed endpoints. Knots at
 *    x_i = i/(n−1); interior y_i drawn in turn from U(y_{i−1}, x_{i+1}) (MONAI RandHistogramShift's
 *    scheme), joined by a monotone piecewise-cubic (PCHIP, Fritsch–Carlson slopes, as scipy's
 *    PchipInterpolator) instead of MONAI's straight segments, so the remap has no kinks;
 *  - Gaussian smoothing: separable, sigma per axis in voxels, kernel = the Gaussian integrated over
 *    each voxel (MONAI's approx="erf") with tail round(4σ) (≥ 1), normalised to sum 1; borders are
 *    half-sample symmetric (d c b a | a b c d | d c b a), under which the sum is exactly preserved;
 *  - flips: reversal of any subset of the three axes.
 *
 * augmentCrop draws from the RNG in a fixed order: window, [histogram shift: coin, knots],
 * [smoothing: coin, three sigmas], three flip coins.
 */
import { DataError } from './errors.js';
import type { Rng } from './rng.js';

type Vec3 = [number, number, number];

/** Clinical windows [lo, hi] in HU (width/level: lung 1500/−600, abdomen 400/50, liver 150/30, brain 80/40). */
export const HU_WINDOWS = {
  lung: [-1350, 150],
  abdomen: [-150, 250],
  liver: [-45, 105],
  brain: [0, 80],
  full: [-1000, 1000],
} as const satisfies Record<string, readonly [number, number]>;
export type WindowName = keyof typeof HU_WINDOWS;
export const WINDOW_NAMES = Object.keys(HU_WINDOWS) as WindowName[];

/** Clips to [lo, hi] and maps onto [0, 1]; `out` may be `data`. */
export function applyWindow(data: Float32Array, lo: number, hi: number, out: Float32Array = data): Float32Array {
  if (!(Number.isFinite(lo) && Number.isFinite(hi) && lo < hi)) throw new DataError(`applyWindow: need finite lo < hi, got lo=${lo}, hi=${hi}`);
  if (out.length !== data.length) throw new DataError(`applyWindow: output holds ${out.length} values, input ${data.length}`);
  const flo = Math.fround(lo);
  const span = Math.fround(hi - lo);
  for (let i = 0; i < data.length; i++) {
    const v = Math.fround(Math.fround(data[i]! - flo) / span);
    out[i] = v < 0 ? 0 : v > 1 ? 1 : v; // NaN stays NaN, as torch.clamp
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Gaussian smoothing

/** erfc with relative error below 1.2e-7 everywhere (a Chebyshev fit), so kernel tails stay accurate. */
function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z - 1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

/** The half kernel w[0..tail] (w[t] = w[−t]), normalised so the full kernel sums to 1. */
export function gaussianKernel(sigma: number, truncate = 4): Float64Array {
  if (!(Number.isFinite(sigma) && sigma > 0)) throw new DataError(`gaussianKernel: sigma must be positive, got ${sigma}`);
  const tail = Math.max(1, Math.floor(Math.max(sigma * truncate, 0.5) + 0.5));
  const w = new Float64Array(tail + 1);
  const k = 1 / (sigma * Math.SQRT2);
  // Mass of N(0, σ²) over [t − ½, t + ½]; erfc differences keep precision in the tails.
  w[0] = 1 - erfc(0.5 * k);
  for (let t = 1; t <= tail; t++) w[t] = 0.5 * (erfc((t - 0.5) * k) - erfc((t + 0.5) * k));
  let sum = w[0]!;
  for (let t = 1; t <= tail; t++) sum += 2 * w[t]!;
  for (let t = 0; t <= tail; t++) w[t] = w[t]! / sum;
  return w;
}

/** Index of the half-sample symmetric extension of [0, n), for any integer i. */
function fold(i: number, n: number): number {
  const m = ((i % (2 * n)) + 2 * n) % (2 * n);
  return m < n ? m : 2 * n - 1 - m;
}

/** One separable pass along `axis` from src to dst (distinct arrays). */
function smoothAxis(src: Float32Array, dst: Float32Array, shape: Vec3, axis: number, w: Float64Array, acc: Float64Array): void {
  const [nd, nh, nw] = shape;
  const tail = w.length - 1;
  const n = shape[axis]!;
  const idx = new Int32Array(n + 2 * tail);
  for (let i = -tail; i < n + tail; i++) idx[i + tail] = fold(i, n);
  if (axis === 2) {
    // Along W (contiguous): per line.
    const line = acc.subarray(0, n + 2 * tail);
    for (let base = 0; base < nd * nh * nw; base += nw) {
      for (let i = 0; i < n + 2 * tail; i++) line[i] = src[base + idx[i]!]!;
      for (let c = 0; c < n; c++) {
        const m = c + tail;
        let v = w[0]! * line[m]!;
        for (let t = 1; t <= tail; t++) v += w[t]! * (line[m - t]! + line[m + t]!);
        dst[base + c] = v;
      }
    }
    return;
  }
  // Along H or D: whole rows (H) or planes (D) at a time, so every access is contiguous.
  const block = axis === 1 ? nw : nh * nw;
  const outer = axis === 1 ? nd : 1;
  const a = acc.subarray(0, block);
  for (let o = 0; o < outer; o++) {
    const base = o * n * block;
    for (let i = 0; i < n; i++) {
      const m = i + tail;
      let row = base + idx[m]! * block;
      for (let q = 0; q < block; q++) a[q] = w[0]! * src[row + q]!;
      for (let t = 1; t <= tail; t++) {
        const wt = w[t]!;
        const lo = base + idx[m - t]! * block;
        const hi = base + idx[m + t]! * block;
        for (let q = 0; q < block; q++) a[q] = a[q]! + wt * (src[lo + q]! + src[hi + q]!);
      }
      row = base + i * block;
      for (let q = 0; q < block; q++) dst[row + q] = a[q]!;
    }
  }
}

/**
 * Separable Gaussian smoothing in place; sigma per axis in voxels (0 skips that axis). `scratch`
 * (same length as data) avoids an allocation when given.
 */
export function gaussianSmooth(data: Float32Array, shape: readonly number[], sigma: readonly number[], scratch?: Float32Array): Float32Array {
  const s = shape as Vec3;
  if (data.length !== s[0] * s[1] * s[2]) throw new DataError(`gaussianSmooth: ${data.length} values for shape [${shape.join(', ')}]`);
  const axes = [2, 1, 0].filter((d) => sigma[d]! > 0);
  if (axes.length === 0) return data;
  const tmp = scratch ?? new Float32Array(data.length);
  if (tmp.length !== data.length || tmp === data) throw new DataError('gaussianSmooth: scratch must be a distinct array of the same length');
  const kernels = axes.map((d) => gaussianKernel(sigma[d]!));
  const longest = Math.max(...kernels.map((k) => k.length));
  const acc = new Float64Array(Math.max(s[1] * s[2], Math.max(...s) + 2 * longest));
  let from = data;
  let to = tmp;
  axes.forEach((d, n) => {
    smoothAxis(from, to, s, d, kernels[n]!, acc);
    [from, to] = [to, from];
  });
  if (from !== data) data.set(from);
  return data;
}

// ---------------------------------------------------------------------------------------------
// Histogram shift

/** Knot values y_0 = 0 < y_1 < … < y_{n−1} = 1 at x_i = i/(n−1), drawn as MONAI does. */
export function histogramKnots(rng: Rng, n = 10): Float64Array {
  if (!Number.isInteger(n) || n < 2) throw new DataError(`histogramKnots: need at least 2 knots, got ${n}`);
  const y = Float64Array.from({ length: n }, (_, i) => i / (n - 1));
  for (let i = 1; i < n - 1; i++) y[i] = rng.uniform(y[i - 1]!, y[i + 1]!);
  return y;
}

/** PCHIP slopes for knots y at uniform spacing h = 1/(n−1) (scipy's interior and end rules). */
export function pchipSlopes(y: ArrayLike<number>): Float64Array {
  const n = y.length;
  const h = 1 / (n - 1);
  const delta = Float64Array.from({ length: n - 1 }, (_, k) => (y[k + 1]! - y[k]!) / h);
  const d = new Float64Array(n);
  if (n === 2) {
    d[0] = d[1] = delta[0]!;
    return d;
  }
  for (let k = 1; k < n - 1; k++) {
    const a = delta[k - 1]!;
    const b = delta[k]!;
    // Equal intervals: the weighted harmonic mean reduces to the plain one.
    d[k] = a * b <= 0 ? 0 : 2 / (1 / a + 1 / b);
  }
  const edge = (d0: number, d1: number): number => {
    let m = (3 * d0 - d1) / 2;
    if (Math.sign(m) !== Math.sign(d0)) m = 0;
    else if (Math.sign(d0) !== Math.sign(d1) && Math.abs(m) > Math.abs(3 * d0)) m = 3 * d0;
    return m;
  };
  d[0] = edge(delta[0]!, delta[1]!);
  d[n - 1] = edge(delta[n - 2]!, delta[n - 3]!);
  return d;
}

/** The monotone cubic through (i/(n−1), y_i), evaluated at x (clamped to [0, 1]). */
export function pchipEval(y: ArrayLike<number>, d: ArrayLike<number>, x: number): number {
  const n = y.length;
  const h = 1 / (n - 1);
  const xc = x < 0 ? 0 : x > 1 ? 1 : x;
  const u = xc * (n - 1);
  const k = Math.min(Math.floor(u), n - 2);
  const t = u - k;
  const t2 = t * t;
  const t3 = t2 * t;
  return (2 * t3 - 3 * t2 + 1) * y[k]! + (t3 - 2 * t2 + t) * h * d[k]! + (3 * t2 - 2 * t3) * y[k + 1]! + (t3 - t2) * h * d[k + 1]!;
}

/** Remaps [0, 1]-valued data in place through the monotone cubic of knots `y`. */
export function histogramShift(data: Float32Array, y: ArrayLike<number>): Float32Array {
  if (y.length < 2 || y[0] !== 0 || y[y.length - 1] !== 1) throw new DataError('histogramShift: knots must start at 0 and end at 1');
  const d = pchipSlopes(y);
  for (let i = 0; i < data.length; i++) data[i] = pchipEval(y, d, data[i]!);
  return data;
}

// ---------------------------------------------------------------------------------------------
// Flips

/** Reverses the flagged axes in place; flipping twice is the identity. */
export function flipAxes(data: Float32Array, shape: readonly number[], axes: readonly boolean[]): Float32Array {
  const [nd, nh, nw] = shape as Vec3;
  if (data.length !== nd * nh * nw) throw new DataError(`flipAxes: ${data.length} values for shape [${shape.join(', ')}]`);
  const swapRange = (p: number, q: number, len: number) => {
    for (let r = 0; r < len; r++) {
      const t = data[p + r]!;
      data[p + r] = data[q + r]!;
      data[q + r] = t;
    }
  };
  if (axes[2]) {
    for (let base = 0; base < data.length; base += nw) data.subarray(base, base + nw).reverse();
  }
  if (axes[1]) {
    for (let a = 0; a < nd; a++) for (let b = 0; b < nh >> 1; b++) swapRange((a * nh + b) * nw, (a * nh + nh - 1 - b) * nw, nw);
  }
  if (axes[0]) {
    const plane = nh * nw;
    for (let a = 0; a < nd >> 1; a++) swapRange(a * plane, (nd - 1 - a) * plane, plane);
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// The per-crop pipeline

export interface AugmentOptions {
  /** Windows to choose from uniformly: names from HU_WINDOWS or explicit [lo, hi] HU pairs. */
  windows: readonly (WindowName | readonly [number, number])[];
  histogramShiftProb: number;
  /** Number of knots, endpoints included (MONAI's default 10). */
  histogramKnots: number;
  smoothProb: number;
  /** Sigma range in voxels, drawn per axis (MONAI RandGaussianSmooth's default 0.25–1.5). */
  smoothSigma: readonly [number, number];
  /** Probability of flipping, per axis. */
  flipProb: number;
}

/** Defaults: the clinical set, and probabilities that are a guess (CoralBay's are not public). */
export const DEFAULT_AUGMENT: Readonly<AugmentOptions> = {
  windows: WINDOW_NAMES,
  histogramShiftProb: 0.5,
  histogramKnots: 10,
  smoothProb: 0.5,
  smoothSigma: [0.25, 1.5],
  flipProb: 0.5,
};

/** What was applied to a crop (for logs and for replaying a sample). */
export interface AugmentRecord {
  window: { name: string; lo: number; hi: number };
  histogramKnots: number[] | null;
  smoothSigma: Vec3 | null;
  flips: [boolean, boolean, boolean];
}

function checkProb(p: number, what: string): void {
  if (!(p >= 0 && p <= 1)) throw new DataError(`augment: ${what} must be a probability in [0, 1], got ${p}`);
}

/** Window → histogram shift → smoothing → flips, in place on a crop of HU values. */
export function augmentCrop(data: Float32Array, shape: readonly number[], rng: Rng, options: Partial<AugmentOptions> = {}, scratch?: Float32Array): AugmentRecord {
  const o = { ...DEFAULT_AUGMENT, ...options };
  if (o.windows.length === 0) throw new DataError('augment: the window list is empty');
  checkProb(o.histogramShiftProb, 'histogramShiftProb');
  checkProb(o.smoothProb, 'smoothProb');
  checkProb(o.flipProb, 'flipProb');
  if (!(o.smoothSigma[0] > 0 && o.smoothSigma[0] <= o.smoothSigma[1])) throw new DataError(`augment: smoothSigma must satisfy 0 < lo ≤ hi, got [${o.smoothSigma.join(', ')}]`);

  for (const w of o.windows) {
    if (typeof w === 'string' ? !Object.hasOwn(HU_WINDOWS, w) : !(w.length === 2 && w[0] < w[1])) {
      throw new DataError(`augment: bad window ${JSON.stringify(w)} (names: ${WINDOW_NAMES.join(', ')}; or [lo, hi] with lo < hi)`);
    }
  }

  const pick = rng.pick(o.windows);
  const [lo, hi] = typeof pick === 'string' ? HU_WINDOWS[pick] : pick;
  applyWindow(data, lo, hi);
  const rec: AugmentRecord = {
    window: { name: typeof pick === 'string' ? pick : 'custom', lo, hi },
    histogramKnots: null,
    smoothSigma: null,
    flips: [false, false, false],
  };
  if (rng.bool(o.histogramShiftProb)) {
    const y = histogramKnots(rng, o.histogramKnots);
    histogramShift(data, y);
    rec.histogramKnots = [...y];
  }
  if (rng.bool(o.smoothProb)) {
    const sigma: Vec3 = [0, 1, 2].map(() => rng.uniform(o.smoothSigma[0], o.smoothSigma[1])) as Vec3;
    gaussianSmooth(data, shape, sigma, scratch);
    rec.smoothSigma = sigma;
  }
  rec.flips = [rng.bool(o.flipProb), rng.bool(o.flipProb), rng.bool(o.flipProb)];
  flipAxes(data, shape, rec.flips);
  return rec;
}
