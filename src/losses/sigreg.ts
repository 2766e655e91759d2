/**
 * SIGReg (LeJEPA): pushes embeddings Z [N, D] towards an isotropic Gaussian by the Epps–Pulley test
 * on random one-dimensional projections: x = Z·A with A [D, M] of unit-norm Gaussian columns,
 * loss = mean over the M slices of the statistic (ops/epps-pulley.ts). Draw new slices each step.
 */
import type { Runtime } from '../gpu/runtime.js';
import { ReefError } from '../gpu/errors.js';
import { eppsPulley, type EppsPulleyOptions } from '../ops/epps-pulley.js';
import { matmul } from '../ops/matmul.js';
import { normalSamples, tensor } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';

/** A [D, M] of N(0, 1) draws from `rng` (uniform [0, 1) source), each column scaled to unit norm. */
export function sigregSliceValues(D: number, M: number, rng: () => number): Float32Array {
  if (!(Number.isInteger(D) && D > 0 && Number.isInteger(M) && M > 0)) throw new ReefError(`sigregSlices: D and M must be positive integers, got ${D}, ${M}`);
  const a = normalSamples(D * M, rng);
  for (let m = 0; m < M; m++) {
    let s = 0;
    for (let d = 0; d < D; d++) s += a[d * M + m]! ** 2;
    const inv = 1 / Math.sqrt(s);
    for (let d = 0; d < D; d++) a[d * M + m] = a[d * M + m]! * inv;
  }
  return a;
}

export function sigregSlices(rt: Runtime, D: number, M = 256, rng: () => number): Tensor {
  return tensor(rt, sigregSliceValues(D, M, rng), [D, M], { name: 'sigreg_slices' });
}

/** Mean Epps–Pulley statistic of Z·A over the slices (gradient to Z; A is a constant). */
export function sigregLoss(z: Tensor, slices: Tensor, opts: EppsPulleyOptions = {}): Tensor {
  if (slices.requiresGrad) throw new ReefError('sigregLoss: the slices are constants (requiresGrad must be false)');
  const x = matmul(z, slices);
  try {
    return eppsPulley(x, opts);
  } finally {
    x.dispose();
  }
}
