/** Making tensors: uninitialised, from host data, filled, random. */
import type { Runtime } from '../gpu/runtime.js';
import { ReefError } from '../gpu/errors.js';
import { toF16Array } from './half.js';
import { BYTES_PER_ELEMENT, checkShape, numel, Storage, Tensor, type DType } from './tensor.js';

export interface TensorOptions {
  dtype?: DType;
  requiresGrad?: boolean;
  name?: string;
}

/** A tensor with pooled, uninitialised memory (for op outputs). */
export function empty(rt: Runtime, shape: readonly number[], dtype: DType = 'f32', what = 'tensor'): Tensor {
  checkShape(shape);
  if (dtype === 'f16' && !rt.caps.f16) throw new ReefError('this adapter has no shader-f16: f16 tensors are unavailable');
  const bytes = numel(shape) * BYTES_PER_ELEMENT[dtype];
  return new Tensor(rt, new Storage(rt, rt.pool.acquire(bytes, what)), shape, dtype);
}

/** Uploads host data. `data` holds values in f32/f64; f16 tensors are converted on the host. */
export function tensor(rt: Runtime, data: ArrayLike<number>, shape: readonly number[], opts: TensorOptions = {}): Tensor {
  const dtype = opts.dtype ?? 'f32';
  const n = numel(shape);
  if (data.length !== n) throw new ReefError(`tensor: ${data.length} values given for shape [${shape.join(', ')}] (${n} elements)`);
  const t = empty(rt, shape, dtype, opts.name || 'tensor');
  const host = dtype === 'f32' ? (data instanceof Float32Array ? data : Float32Array.from(data)) : toF16Array(data);
  if (n > 0) rt.write(t.buffer, host, 0, true);
  t.requiresGrad = opts.requiresGrad ?? false;
  if (opts.name) t.name = opts.name;
  return t;
}

/** Small deterministic PRNG (mulberry32) for initialisation and tests. */
export function makeRng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Two independent N(0, std²) samples from two draws of `rng` (Box–Muller). */
export function normalPair(rng: () => number, std = 1): [number, number] {
  const u1 = Math.max(rng(), 1e-12);
  const u2 = rng();
  const r = Math.sqrt(-2 * Math.log(u1)) * std;
  return [r * Math.cos(2 * Math.PI * u2), r * Math.sin(2 * Math.PI * u2)];
}

/** n normal samples N(0, std²) from `rng`, two per pair of draws. */
export function normalSamples(n: number, rng: () => number, std = 1): Float32Array {
  const data = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const [a, b] = normalPair(rng, std);
    data[i] = a;
    if (i + 1 < n) data[i + 1] = b;
  }
  return data;
}

/** Normal samples N(0, std²) drawn on the host from `seed`, uploaded. */
export function randn(rt: Runtime, shape: readonly number[], opts: TensorOptions & { seed?: number; std?: number } = {}): Tensor {
  return tensor(rt, normalSamples(numel(shape), makeRng(opts.seed ?? 1), opts.std ?? 1), shape, opts);
}
