/**
 * 3D patch embedding as MONAI's PatchEmbed (patch_norm off): pad D, H, W on the right to multiples
 * of the patch, then Conv3d with kernel = stride = patch and a bias. A stride-equal-kernel
 * convolution is a matmul over non-overlapping patches, so it runs as a strided gather (rank-8
 * permute) and one GEMM with the bias fused; its backward comes from those ops.
 *
 *   x: [B, C, D, H, W] (channels first, as MONAI)   weight: [E, C, p, p, p]   bias: [E]
 *   returns channels-last tokens [B, D/p, H/p, W/p, E] (the layout the Swin stages work in)
 */
import { ReefError } from '../gpu/errors.js';
import { matmul } from '../ops/matmul.js';
import { padEnd, permute, reshape } from '../ops/shape.js';
import type { Tensor } from '../tensor/tensor.js';

export function patchEmbed3d(x: Tensor, weight: Tensor, bias: Tensor | null, patch = 2): Tensor {
  if (x.ndim !== 5) throw new ReefError(`patchEmbed3d: input ${x.describe()} must be [B, C, D, H, W]`);
  const [B, C, D, H, W] = x.shape as [number, number, number, number, number];
  const E = weight.shape[0]!;
  const p = patch;
  if (weight.ndim !== 5 || weight.shape[1] !== C || weight.shape.slice(2).some((k) => k !== p)) {
    throw new ReefError(`patchEmbed3d: weight ${weight.describe()} must be [E, ${C}, ${p}, ${p}, ${p}] for input ${x.describe()}`);
  }
  const pad = [0, 0, (p - (D % p)) % p, (p - (H % p)) % p, (p - (W % p)) % p];
  const xp = padEnd(x, pad);
  const [Dp, Hp, Wp] = [(D + pad[2]!) / p, (H + pad[3]!) / p, (W + pad[4]!) / p];
  // [B, C, D', p, H', p, W', p] → [B, D', H', W', C, p, p, p]: one row per patch, in the weight's order.
  const split = reshape(xp, [B, C, Dp, p, Hp, p, Wp, p]);
  const patches = permute(split, [0, 2, 4, 6, 1, 3, 5, 7]);
  const rows = reshape(patches, [B * Dp * Hp * Wp, C * p * p * p]);
  const w2 = reshape(weight, [E, C * p * p * p]);
  const tokens = matmul(rows, w2, { transB: true, bias });
  const out = reshape(tokens, [B, Dp, Hp, Wp, E]);
  for (const t of [xp, split, patches, rows, w2, tokens]) t.dispose();
  return out;
}
