/**
 * Minimal float64 n-d array type and helpers for the CPU reference implementations.
 *
 * Layout is always dense row-major (C order). A shape of `[]` is a scalar with one element.
 */

export interface Arr {
  data: Float64Array;
  shape: number[];
}

/** Number of elements of a shape (1 for the scalar shape `[]`). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`invalid dimension ${d} in shape [${shape.join(',')}]`);
    n *= d;
  }
  return n;
}

/** Row-major (C order) element strides of a shape. */
export function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/**
 * Creates an array of the given shape. Without `data` it is zero-filled; with `data` the values
 * are copied (so the caller's buffer is never aliased) and the length must equal `numel(shape)`.
 */
export function arr(shape: readonly number[], data?: ArrayLike<number>): Arr {
  const n = numel(shape);
  const out = new Float64Array(n);
  if (data !== undefined) {
    if (data.length !== n) throw new Error(`arr: data length ${data.length} does not match shape [${shape.join(',')}] (${n})`);
    out.set(data);
  }
  return { data: out, shape: [...shape] };
}

/** Deep copy of an array. */
export function clone(x: Arr): Arr {
  return { data: new Float64Array(x.data), shape: [...x.shape] };
}

export function shapesEqual(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export interface Rng {
  /** Uniform in [0, 1). */
  uniform(): number;
  /** Standard normal N(0, 1). */
  normal(): number;
}

/** Deterministic RNG: mulberry32 for uniforms, Box–Muller (both outputs used) for normals. */
export function makeRng(seed: number): Rng {
  let state = seed >>> 0;
  let spare: number | null = null;
  const uniform = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = (): number => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = uniform(); // avoid log(0)
    const v = uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
  return { uniform, normal };
}

/** Array of i.i.d. N(0, scale²) values. */
export function randn(shape: readonly number[], rng: Rng, scale = 1): Arr {
  const x = arr(shape);
  for (let i = 0; i < x.data.length; i++) x.data[i] = rng.normal() * scale;
  return x;
}

/** Array of i.i.d. uniform values in [lo, hi). */
export function rand(shape: readonly number[], rng: Rng, lo: number, hi: number): Arr {
  const x = arr(shape);
  for (let i = 0; i < x.data.length; i++) x.data[i] = lo + (hi - lo) * rng.uniform();
  return x;
}

/**
 * Maximum relative error of `actual` against `expected`:
 *
 *     max_i |actual[i] − expected[i]|  /  max(max_i |expected[i]|, 1e-30)
 *
 * i.e. the error is measured relative to the LARGEST magnitude in the expected array (not per
 * element), so tiny expected entries do not blow the ratio up. Returns Infinity on length
 * mismatch or if any value is NaN/non-finite where the other is not identical.
 */
export function maxRelError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (a === e) {
      // exact match (also covers equal infinities)
      if (Number.isNaN(a)) return Infinity;
      if (Number.isFinite(e)) maxRef = Math.max(maxRef, Math.abs(e));
      continue;
    }
    const d = Math.abs(a - e);
    if (!Number.isFinite(d)) return Infinity;
    if (d > maxDiff) maxDiff = d;
    const ae = Math.abs(e);
    if (ae > maxRef) maxRef = ae;
  }
  return maxDiff / Math.max(maxRef, 1e-30);
}

/** True when every value is finite (no NaN, no ±Infinity). */
export function allFinite(x: ArrayLike<number>): boolean {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) return false;
  return true;
}
