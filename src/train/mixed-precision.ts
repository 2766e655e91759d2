/**
 * f16 activations with f32 master weights: the forward reads f16 copies of the weights and the
 * cast's backward casts each gradient back, so gradients accumulate in f32 on the masters. A copy is
 * made once per name and kept until `dispose()` (after backward), so a recomputed block sees the
 * very tensors its first run used and its gradients reach the masters.
 */
import { cast } from '../ops/cast.js';
import { keep, type Tensor } from '../tensor/tensor.js';
import { withGrad } from '../tensor/grad-mode.js';
import type { WeightLookup } from '../models/swin3d/state-dict.js';

export class HalfWeights {
  private readonly copies = new Map<string, Tensor>();

  constructor(private readonly masters: WeightLookup) {}

  readonly lookup: WeightLookup = (name) => {
    let t = this.copies.get(name);
    if (!t) {
      // Recorded even when first asked under noGrad (a recomputed block's first run), so the
      // copy's gradient can reach its master; a master that needs none records nothing.
      t = keep(withGrad(() => cast(this.masters(name), 'f16')));
      this.copies.set(name, t);
    }
    return t;
  };

  dispose(): void {
    for (const t of this.copies.values()) t.dispose();
    this.copies.clear();
  }
}
