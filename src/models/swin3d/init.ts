/**
 * Random weights for a configuration, by MONAI name: LayerNorm weights near 1, biases and
 * relative-position tables small but non-zero, linear and conv weights N(0, 1/fan_in). For
 * benchmarks, tests and a fresh pre-training run; drawn on the host from a seed, so reproducible.
 */
import type { Runtime } from '../../gpu/runtime.js';
import { makeRng, normalSamples, tensor } from '../../tensor/create.js';
import type { Tensor } from '../../tensor/tensor.js';

/** Host values for one parameter. */
export function initValues(name: string, shape: readonly number[], rng: () => number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const z = normalSamples(n, rng);
  const isNormWeight = /norm\d*\.weight$/.test(name);
  if (isNormWeight) return z.map((v) => 1 + 0.1 * v);
  if (name.endsWith('.bias') || name.endsWith('relative_position_bias_table')) return z.map((v) => 0.02 * v);
  const fanIn = n / shape[0]!;
  const std = 1 / Math.sqrt(fanIn);
  return z.map((v) => v * std);
}

export function initWeights(rt: Runtime, shapes: Map<string, number[]>, seed = 0, requiresGrad = false): Map<string, Tensor> {
  const rng = makeRng(seed);
  const out = new Map<string, Tensor>();
  for (const [name, shape] of shapes) out.set(name, tensor(rt, initValues(name, shape, rng), shape, { requiresGrad, name }));
  return out;
}
