/** Tensors filled with a constant on the GPU. */
import type { Runtime } from '../gpu/runtime.js';
import { fill } from '../ops/pointwise.js';
import { empty, type TensorOptions } from './create.js';
import type { Tensor } from './tensor.js';

export function full(rt: Runtime, shape: readonly number[], value: number, opts: TensorOptions = {}): Tensor {
  const t = fill(empty(rt, shape, opts.dtype ?? 'f32', opts.name || 'full'), value);
  t.requiresGrad = opts.requiresGrad ?? false;
  if (opts.name) t.name = opts.name;
  return t;
}

export const zeros = (rt: Runtime, shape: readonly number[], opts: TensorOptions = {}) => full(rt, shape, 0, opts);
export const ones = (rt: Runtime, shape: readonly number[], opts: TensorOptions = {}) => full(rt, shape, 1, opts);
