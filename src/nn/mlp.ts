/** Linear → GELU → LayerNorm → … → Linear: the small classifier of the demo and the training test. */
import type { Runtime } from '../gpu/runtime.js';
import { gelu } from '../ops/pointwise.js';
import type { Tensor } from '../tensor/tensor.js';
import { LayerNorm } from './layernorm.js';
import { Linear } from './linear.js';
import { Module, prefixed } from './module.js';

export class Mlp extends Module {
  readonly layers: Linear[] = [];
  readonly norms: LayerNorm[] = [];

  /** `sizes` = [in, hidden…, out]. */
  constructor(rt: Runtime, sizes: readonly number[], seed = 1) {
    super();
    for (let i = 0; i + 1 < sizes.length; i++) {
      this.layers.push(new Linear(rt, sizes[i]!, sizes[i + 1]!, { seed: seed + 10 * i }));
      if (i + 2 < sizes.length) this.norms.push(new LayerNorm(rt, sizes[i + 1]!));
    }
  }

  forward(x: Tensor): Tensor {
    let h = x;
    this.layers.forEach((layer, i) => {
      const z = layer.forward(h);
      if (h !== x) h.dispose();
      const norm = this.norms[i];
      if (!norm) {
        h = z;
        return;
      }
      const a = gelu(z);
      z.dispose();
      h = norm.forward(a);
      a.dispose();
    });
    return h;
  }

  namedParameters(): [string, Tensor][] {
    return [...this.layers.flatMap((l, i) => prefixed(`layers.${i}`, l)), ...this.norms.flatMap((n, i) => prefixed(`norms.${i}`, n))];
  }
}
