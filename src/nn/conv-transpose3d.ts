/**
 * Transposed 3D convolution with kernel = stride = 2 and no bias (MONAI UnetrUpBlock's upsampling):
 *   out[b, co, 2d + i, 2h + j, 2w + k] = Σ_ci x[b, ci, d, h, w] · weight[ci, co, i, j, k]
 * Channels first, PyTorch's weight layout [Ci, Co, 2, 2, 2]. Windows do not overlap, so it is one
 * GEMM ([B·D·H·W, Ci] · [Ci, Co·8]) and a rank-8 permute interleaving the 2×2×2 blocks; the
 * backward comes from those ops.
 */
import { ReefError } from '../gpu/errors.js';
import { matmul } from '../ops/matmul.js';
import { permute, reshape } from '../ops/shape.js';
import type { Tensor } from '../tensor/tensor.js';

export function convTranspose3dK2(x: Tensor, weight: Tensor): Tensor {
  if (x.ndim !== 5) throw new ReefError(`convTranspose3dK2: input ${x.describe()} must be [B, C, D, H, W]`);
  const [B, Ci, D, H, W] = x.shape as [number, number, number, number, number];
  if (weight.ndim !== 5 || weight.shape[0] !== Ci || weight.shape.slice(2).some((k) => k !== 2)) {
    throw new ReefError(`convTranspose3dK2: weight ${weight.describe()} must be [${Ci}, Co, 2, 2, 2] for input ${x.describe()}`);
  }
  const Co = weight.shape[1]!;
  const cl = permute(x, [0, 2, 3, 4, 1]); // [B, D, H, W, Ci]
  const rows = reshape(cl, [B * D * H * W, Ci]);
  const w2 = reshape(weight, [Ci, Co * 8]);
  const prod = matmul(rows, w2); // [B·DHW, Co·2·2·2]
  const blocks = reshape(prod, [B, D, H, W, Co, 2, 2, 2]);
  const inter = permute(blocks, [0, 4, 1, 5, 2, 6, 3, 7]); // [B, Co, D, 2, H, 2, W, 2]
  const out = reshape(inter, [B, Co, 2 * D, 2 * H, 2 * W]);
  for (const t of [cl, rows, w2, prod, blocks, inter]) t.dispose();
  return out;
}
