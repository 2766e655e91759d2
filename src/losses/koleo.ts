/**
 * KoLeo regulariser (DINOv2) on student embeddings x [rows, D]:
 *   x̂ = x / max(‖x‖, eps);  loss = Σ_groups −mean_i log(‖x̂_i − x̂_nn(i)‖₂ + eps)
 * with nn(i) the row of the same group of highest cosine (DINOv2 applies it to each global crop's
 * batch: group = B). The caller applies the weight (0.1). Needs ≥ 2 rows per group.
 */
import { l2Normalize } from '../ops/l2-normalize.js';
import { koleoNormalized } from '../ops/koleo.js';
import type { Tensor } from '../tensor/tensor.js';

export interface KoleoOptions {
  /** Rows per group (default: all rows, one group). */
  group?: number;
  /** Normalisation and distance epsilon (default 1e-8). */
  eps?: number;
}

export function koleoLoss(x: Tensor, opts: KoleoOptions = {}): Tensor {
  const eps = opts.eps ?? 1e-8;
  const group = opts.group ?? x.shape[0];
  const xhat = l2Normalize(x, eps);
  try {
    return koleoNormalized(xhat, group, eps);
  } finally {
    xhat.dispose();
  }
}
