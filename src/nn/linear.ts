/** Linear layer with PyTorch's layout: weight [out, in], y = x·Wᵀ + b (the bias fused into the matmul). */
import type { Runtime } from '../gpu/runtime.js';
import { matmul } from '../ops/matmul.js';
import { makeRng, tensor } from '../tensor/create.js';
import { keep, type Tensor } from '../tensor/tensor.js';
import { Module } from './module.js';

/** Uniform(−bound, bound) values from a seed (PyTorch's default Linear init uses bound = 1/√fan_in). */
export function uniformInit(n: number, bound: number, seed: number): Float32Array {
  const rng = makeRng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * rng() - 1) * bound;
  return out;
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(rt: Runtime, readonly inFeatures: number, readonly outFeatures: number, opts: { bias?: boolean; seed?: number } = {}) {
    super();
    const bound = 1 / Math.sqrt(inFeatures);
    const seed = opts.seed ?? 1;
    this.weight = keep(tensor(rt, uniformInit(inFeatures * outFeatures, bound, seed), [outFeatures, inFeatures], { requiresGrad: true, name: 'weight' }));
    this.bias = opts.bias === false ? null : keep(tensor(rt, uniformInit(outFeatures, bound, seed + 1), [outFeatures], { requiresGrad: true, name: 'bias' }));
  }

  forward(x: Tensor): Tensor {
    return matmul(x, this.weight, { transB: true, bias: this.bias });
  }

  namedParameters(): [string, Tensor][] {
    return this.bias ? [['weight', this.weight], ['bias', this.bias]] : [['weight', this.weight]];
  }
}
