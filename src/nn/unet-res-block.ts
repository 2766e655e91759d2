/**
 * MONAI's UnetResBlock (UnetrBasicBlock with res_block=True, and SwinViT's use_v2 blocks), channels
 * first: conv 3³ (no bias) → InstanceNorm → LeakyReLU(0.01) → conv 3³ → InstanceNorm, plus the input
 * (or InstanceNorm(conv 1³ of it) when the channel count changes), then LeakyReLU(0.01).
 * Weights by MONAI's names under `prefix`: conv1.conv.weight, conv2.conv.weight, conv3.conv.weight.
 */
import { add } from '../ops/binary.js';
import { conv3d } from '../ops/conv3d.js';
import { instanceNorm } from '../ops/instance-norm.js';
import { leakyRelu } from '../ops/pointwise.js';
import { tidy, type Tensor } from '../tensor/tensor.js';

export type WeightLookup = (name: string) => Tensor;

export function unetResBlock(x: Tensor, W: WeightLookup, prefix: string): Tensor {
  return tidy(() => {
    const w1 = W(`${prefix}conv1.conv.weight`);
    const h = instanceNorm(conv3d(leakyRelu(instanceNorm(conv3d(x, w1)), 0.01), W(`${prefix}conv2.conv.weight`)));
    const residual = w1.shape[0] === x.shape[1] ? x : instanceNorm(conv3d(x, W(`${prefix}conv3.conv.weight`)));
    return leakyRelu(add(h, residual), 0.01);
  });
}
