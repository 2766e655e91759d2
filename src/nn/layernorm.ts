/** LayerNorm module: learnable per-channel scale and shift (ones and zeros at start). */
import type { Runtime } from '../gpu/runtime.js';
import { layerNorm } from '../ops/layernorm.js';
import { full } from '../tensor/fill.js';
import { keep, type Tensor } from '../tensor/tensor.js';
import { Module } from './module.js';

export class LayerNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(rt: Runtime, readonly channels: number, readonly eps = 1e-5) {
    super();
    this.weight = keep(full(rt, [channels], 1, { requiresGrad: true, name: 'weight' }));
    this.bias = keep(full(rt, [channels], 0, { requiresGrad: true, name: 'bias' }));
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }

  namedParameters(): [string, Tensor][] {
    return [['weight', this.weight], ['bias', this.bias]];
  }
}
