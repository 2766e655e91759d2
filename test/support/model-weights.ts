/**
 * Random model weights shared by a GPU model and its float64 reference: drawn once on the host by
 * the model's own initValues (so LayerNorm weights, biases and relative-position tables are all
 * non-trivial), kept as float64 copies of the float32 values, and uploaded from those, so both
 * sides start from identical numbers. Also the finite-difference helpers the model gradient tests
 * share.
 */
import { expect } from 'vitest';
import { arr, type Arr, type Rng } from '../ref/array';
import { initValues } from '../../src/models/swin3d/init';
import { makeRng } from '../../src/tensor/create';
import { tensor, type Runtime, type Tensor } from '../../src/index';

export function hostWeights(shapes: Map<string, number[]>, seed: number): Map<string, Arr> {
  const rng = makeRng(seed);
  const out = new Map<string, Arr>();
  for (const [name, shape] of shapes) out.set(name, arr(shape, initValues(name, shape, rng)));
  return out;
}

export function lookup<T>(m: Map<string, T>): (name: string) => T {
  return (name) => {
    const t = m.get(name);
    if (t === undefined) throw new Error(`weight ${name} missing`);
    return t;
  };
}

export function uploadWeights(rt: Runtime, m: Map<string, Arr>, requiresGrad = false): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, a] of m) out.set(name, tensor(rt, a.data, a.shape, { requiresGrad, name }));
  return out;
}

export function disposeAll(ts: Iterable<Tensor>): void {
  for (const t of ts) {
    t.grad?.dispose();
    t.grad = null;
    t.dispose();
  }
}

/** [B, D, H, W, C] (GPU, channels-last) values → channels-first order, as float64. */
export function channelsFirstValues(v: ArrayLike<number>, shape: readonly number[]): Float64Array {
  const [B, D, H, W, C] = shape as [number, number, number, number, number];
  const S = D * H * W;
  const out = new Float64Array(v.length);
  for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) for (let c = 0; c < C; c++) out[(b * C + c) * S + s] = v[(b * S + s) * C + c]!;
  return out;
}

/** max|a − e| / max|e| (as maxRelError) and the two maxima, for printing. */
export function relStats(a: ArrayLike<number>, e: ArrayLike<number>): { err: number; maxDiff: number; maxRef: number } {
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < e.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(a[i]! - e[i]!));
    maxRef = Math.max(maxRef, Math.abs(e[i]!));
  }
  return { err: maxDiff / Math.max(maxRef, 1e-30), maxDiff, maxRef };
}

/** A random direction for one tensor: N(0, 1) scaled by the tensor's RMS value (its "scale"). */
export function scaledDirection(a: Arr, rng: Rng): Float64Array {
  let ss = 0;
  for (const v of a.data) ss += v * v;
  const rms = Math.sqrt(ss / Math.max(a.data.length, 1)) || 1;
  const d = new Float64Array(a.data.length);
  for (let i = 0; i < d.length; i++) d[i] = rng.normal() * rms;
  return d;
}

/**
 * A random direction over a group of tensors whose parts contribute comparably to Σ grad·dir, so
 * that a wrong gradient in a small tensor (a bias, a table) is not drowned by the big weights:
 * tensor t gets N(0, 1)·rms(θ_t)·boost_t, boost_t = clamp(R / (rms(θ_t)·‖g_t‖), 1, maxBoost) with R
 * the group's largest rms(θ_t)·‖g_t‖ (g from the gradients under test; any fixed direction is a
 * valid check). Perturbations stay within maxBoost·h of each tensor's own scale.
 */
export function balancedDirection(names: readonly string[], values: (name: string) => Arr, grads: (name: string) => ArrayLike<number>, rng: Rng, maxBoost = 100): Map<string, Float64Array> {
  const rms = (v: ArrayLike<number>) => {
    let ss = 0;
    for (let i = 0; i < v.length; i++) ss += v[i]! * v[i]!;
    return Math.sqrt(ss / Math.max(v.length, 1));
  };
  const scale = new Map(names.map((n) => [n, rms(values(n).data) || 1]));
  const weight = new Map(names.map((n) => [n, scale.get(n)! * rms(grads(n)) * Math.sqrt(values(n).data.length)]));
  const R = Math.max(...weight.values());
  const out = new Map<string, Float64Array>();
  for (const n of names) {
    const boost = Math.min(maxBoost, Math.max(1, R / Math.max(weight.get(n)!, 1e-300)));
    const d = new Float64Array(values(n).data.length);
    for (let i = 0; i < d.length; i++) d[i] = rng.normal() * scale.get(n)! * boost;
    out.set(n, d);
  }
  return out;
}

/** `base` with `h·dir` added to the named tensors (the others shared, not copied). */
export function perturbed(base: Map<string, Arr>, dir: Map<string, Float64Array>, h: number): Map<string, Arr> {
  const out = new Map(base);
  for (const [name, d] of dir) {
    const a = base.get(name)!;
    out.set(name, arr(a.shape, a.data.map((v, i) => v + h * d[i]!)));
  }
  return out;
}

/** Σ grad·dir over the named tensors, from downloaded gradients. */
export function directional(grads: Map<string, ArrayLike<number>>, dir: Map<string, Float64Array>): number {
  return directionalTerms(grads, dir).value;
}

/**
 * Σ grad·dir and the scale of its terms, sqrt(Σ (grad_i·dir_i)²): the size a random-sign sum of
 * these terms has, and so the size its rounding errors are relative to.
 */
export function directionalTerms(grads: Map<string, ArrayLike<number>>, dir: Map<string, Float64Array>): { value: number; scale: number } {
  let s = 0;
  let ss = 0;
  for (const [name, d] of dir) {
    const g = grads.get(name);
    if (!g) throw new Error(`no gradient for ${name}`);
    for (let i = 0; i < d.length; i++) {
      s += g[i]! * d[i]!;
      ss += (g[i]! * d[i]!) ** 2;
    }
  }
  return { value: s, scale: Math.sqrt(ss) };
}

/**
 * The error of a directional derivative from the GPU against the finite difference of the float64
 * reference: |gpu − fd| / max(|fd|, scale), with scale = sqrt(Σ (grad_i·dir_i)²). Dividing by |fd|
 * alone would blow up when the random direction happens to make the sum cancel; the f32 error of
 * the sum is proportional to the scale of its terms, not to the sum.
 */
export function directionalError(gpu: { value: number; scale: number }, fd: number): number {
  const d = Math.abs(gpu.value - fd);
  return d === 0 ? 0 : d / Math.max(Math.abs(fd), gpu.scale);
}

/** Every parameter's gradient (asserting it exists) and the input's, read back from the GPU. */
export async function readGrads(params: Map<string, Tensor>, input: Tensor): Promise<Map<string, Float32Array>> {
  const grads = new Map<string, Float32Array>();
  for (const [name, p] of params) {
    expect(p.grad, `gradient of ${name}`).not.toBeNull();
    grads.set(name, await p.grad!.read());
  }
  grads.set('input', await input.grad!.read());
  return grads;
}
