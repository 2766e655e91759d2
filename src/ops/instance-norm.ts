/**
 * InstanceNorm over the spatial axes of a channels-first tensor [B, C, ...spatial] (PyTorch's
 * InstanceNorm3d with affine=False, no running stats, eps 1e-5, biased variance): each (b, c) row
 * of D·H·W values is a LayerNorm row without affine parameters, so the LayerNorm kernels serve.
 */
import { ReefError } from '../gpu/errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { layerNorm } from './layernorm.js';
import { reshape } from './shape.js';

export function instanceNorm(x: Tensor, eps = 1e-5): Tensor {
  if (x.ndim < 3) throw new ReefError(`instanceNorm: ${x.describe()} must be [B, C, spatial…]`);
  const rows = x.shape[0]! * x.shape[1]!;
  const flat = reshape(x, [rows, x.size / Math.max(rows, 1)]);
  const normed = layerNorm(flat, null, null, eps);
  const out = reshape(normed, x.shape);
  flat.dispose();
  normed.dispose();
  return out;
}
