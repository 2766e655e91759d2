/**
 * The gather of 3D patch merging (Swin): pad D, H, W at the end to even sizes, then concatenate the
 * eight stride-2 sub-volumes x[:, d0::2, h0::2, w0::2, :] on the channel axis, in one of the three
 * orders MONAI has used (see MERGE_ORDERS). Channels-last in and out:
 *   x: [B, D, H, W, C]  →  [B, ⌈D/2⌉, ⌈H/2⌉, ⌈W/2⌉, 8C]
 * Each sub-volume is one strided copy into its channel block. The backward adds each block back
 * into its positions, so sub-volumes read twice (MONAI ≤ 1.4's order) get both gradients.
 */
import { ReefError } from '../gpu/errors.js';
import { zeros } from '../tensor/fill.js';
import { record } from '../tensor/tape.js';
import type { Tensor } from '../tensor/tensor.js';
import { contiguousStrides } from './geometry.js';
import { copyStrided, padEnd, slice } from './shape.js';

export type MergeOrder = 'merging' | 'merging-1.5' | 'mergingv2';

/** (d, h, w) offsets of the eight sub-volumes, in concatenation order. */
export const MERGE_ORDERS: Record<MergeOrder, readonly (readonly [number, number, number])[]> = {
  // MONAI ≤ 1.4 (the weights of CoralBay/eva): slices 5 and 6 repeat 2 and 3; (1,1,0) and (0,1,1) are never read.
  merging: [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 0], [0, 0, 1], [1, 1, 1]],
  // MONAI ≥ 1.5, the duplicate fixed.
  'merging-1.5': [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]],
  // PatchMergingV2: itertools.product over (d, h, w).
  mergingv2: [[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1], [1, 0, 0], [1, 0, 1], [1, 1, 0], [1, 1, 1]],
};

export function mergeGather3d(x: Tensor, order: MergeOrder = 'merging'): Tensor {
  if (x.ndim !== 5) throw new ReefError(`mergeGather3d: input ${x.describe()} must be channels-last [B, D, H, W, C]`);
  const offsets = MERGE_ORDERS[order];
  if (!offsets) throw new ReefError(`mergeGather3d: unknown order '${order}' (have ${Object.keys(MERGE_ORDERS).join(', ')})`);
  const [B, D, H, W, C] = x.shape as [number, number, number, number, number];
  const xp = padEnd(x, [0, D % 2, H % 2, W % 2, 0]);
  const padded = xp.shape;
  const [Do, Ho, Wo] = [(D + (D % 2)) / 2, (H + (H % 2)) / 2, (W + (W % 2)) / 2];
  const inStrides = contiguousStrides(xp.shape);
  const outShape = [B, Do, Ho, Wo, 8 * C];
  const outStrides = contiguousStrides(outShape);
  const block = [B, Do, Ho, Wo, C];
  // Sub-volume k: element (b, d, h, w, c) of the block is xp[b, 2d + d0, 2h + h0, 2w + w0, c].
  const view = (k: number) => {
    const [d0, h0, w0] = offsets[k]!;
    return {
      offset: d0 * inStrides[1]! + h0 * inStrides[2]! + w0 * inStrides[3]!,
      stride: [inStrides[0]!, 2 * inStrides[1]!, 2 * inStrides[2]!, 2 * inStrides[3]!, 1],
    };
  };
  const out = zeros(x.rt, outShape, { dtype: x.dtype });
  for (let k = 0; k < 8; k++) {
    const v = view(k);
    copyStrided(xp, out, { shape: block, inOffset: v.offset, inStride: v.stride, outOffset: k * C, outStride: outStrides });
  }
  xp.dispose();
  return record(`mergeGather3d(${order})`, out, [x], [], (g) => {
    const gp = zeros(x.rt, padded, { dtype: x.dtype });
    for (let k = 0; k < 8; k++) {
      const v = view(k);
      copyStrided(g, gp, { shape: block, inOffset: k * C, inStride: outStrides, outOffset: v.offset, outStride: v.stride, accumulate: true });
    }
    if (padded.every((d, i) => d === x.shape[i])) return [gp];
    const gx = slice(gp, x.shape.map(() => 0), x.shape);
    gp.dispose();
    return [gx];
  });
}
