/**
 * Swin 3D patch merging (MONAI PatchMerging / PatchMergingV2): the eight-sub-volume gather to 8C
 * channels, LayerNorm(8C) with affine, and Linear(8C → 2C) without bias. Channels-last in and out.
 */
import type { Runtime } from '../gpu/runtime.js';
import { mergeGather3d, type MergeOrder } from '../ops/patch-merge.js';
import type { Tensor } from '../tensor/tensor.js';
import { LayerNorm } from './layernorm.js';
import { Linear } from './linear.js';
import { Module, prefixed } from './module.js';

export class PatchMerging3d extends Module {
  readonly norm: LayerNorm;
  readonly reduction: Linear;

  constructor(rt: Runtime, readonly channels: number, readonly order: MergeOrder = 'merging', seed = 1) {
    super();
    this.norm = new LayerNorm(rt, 8 * channels);
    this.reduction = new Linear(rt, 8 * channels, 2 * channels, { bias: false, seed });
  }

  forward(x: Tensor): Tensor {
    const gathered = mergeGather3d(x, this.order);
    const normed = this.norm.forward(gathered);
    gathered.dispose();
    const out = this.reduction.forward(normed);
    normed.dispose();
    return out;
  }

  /** MONAI's state-dict names: norm.weight, norm.bias, reduction.weight. */
  namedParameters(): [string, Tensor][] {
    return [...prefixed('norm', this.norm), ...prefixed('reduction', this.reduction)];
  }
}
