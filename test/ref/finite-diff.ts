/**
 * Central finite-difference checker for vector–Jacobian products.
 */
import { type Arr, type Rng, clone, randn, shapesEqual } from './array';

export interface CheckVjpOptions {
  /** The forward function (must not mutate its inputs). */
  f: (inputs: Arr[]) => Arr;
  /** Point at which the VJP is checked. Not modified (perturbations are done on copies). */
  inputs: Arr[];
  /** Analytic VJP: one gradient per input, each shaped like that input. */
  vjp: (inputs: Arr[], gOut: Arr) => Arr[];
  rng: Rng;
  /** Central-difference step (default 1e-6). */
  h?: number;
  /** Inputs with more elements than this are checked on a random subset of this many (default 64). */
  maxElems?: number;
}

/**
 * Draws a random upstream gradient gOut ~ N(0,1) shaped like f(inputs), computes the analytic
 * VJP, and compares it with central differences of the scalar L(x) = ⟨gOut, f(x)⟩:
 *
 *     ∂L/∂x_i ≈ (L(x + h·e_i) − L(x − h·e_i)) / (2h)
 *
 * for every element of each input (or a random subset of `maxElems` distinct elements for
 * bigger inputs). Returns, per input, the max relative error
 *
 *     max_i |analytic_i − numeric_i| / max(max_i |numeric_i|, max_i |analytic_i|, 1e-30)
 *
 * over the checked elements (symmetric denominator, so an all-zero true gradient with a wrong
 * non-zero analytic one still scores ≈ 1, while exact zeros on both sides score 0).
 * Throws if the VJP returns the wrong number of gradients or a wrongly shaped one.
 */
export function checkVjp(opts: CheckVjpOptions): number[] {
  const { f, inputs, vjp, rng } = opts;
  const h = opts.h ?? 1e-6;
  const maxElems = opts.maxElems ?? 64;

  const out0 = f(inputs);
  const gOut = randn(out0.shape, rng);
  const analytic = vjp(inputs, gOut);
  if (analytic.length !== inputs.length) {
    throw new Error(`checkVjp: vjp returned ${analytic.length} gradients for ${inputs.length} inputs`);
  }

  const work = inputs.map(clone);
  const loss = (): number => {
    const y = f(work);
    if (!shapesEqual(y.shape, gOut.shape)) throw new Error('checkVjp: f changed its output shape');
    let s = 0;
    for (let i = 0; i < y.data.length; i++) s += gOut.data[i]! * y.data[i]!;
    return s;
  };

  return inputs.map((input, which) => {
    const grad = analytic[which]!;
    if (!shapesEqual(grad.shape, input.shape)) {
      throw new Error(`checkVjp: gradient ${which} has shape [${grad.shape.join(',')}], input has [${input.shape.join(',')}]`);
    }
    const n = input.data.length;
    const idx = pickIndices(n, maxElems, rng);
    const x = work[which]!.data;
    let maxDiff = 0;
    let maxMag = 0;
    for (const i of idx) {
      const orig = x[i]!;
      x[i] = orig + h;
      const lp = loss();
      x[i] = orig - h;
      const lm = loss();
      x[i] = orig;
      const numeric = (lp - lm) / (2 * h);
      const a = grad.data[i]!;
      if (!Number.isFinite(a) || !Number.isFinite(numeric)) return Infinity;
      maxDiff = Math.max(maxDiff, Math.abs(a - numeric));
      maxMag = Math.max(maxMag, Math.abs(a), Math.abs(numeric));
    }
    return maxDiff / Math.max(maxMag, 1e-30);
  });
}

/** All indices 0..n−1 when n ≤ k, otherwise k distinct random ones (partial Fisher–Yates). */
function pickIndices(n: number, k: number, rng: Rng): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  if (n <= k) return all;
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rng.uniform() * (n - i));
    const t = all[i]!;
    all[i] = all[j]!;
    all[j] = t;
  }
  return all.slice(0, k);
}
