/**
 * Activation recomputation. `checkpoint` runs `fn` without a tape and records one node holding only
 * the inputs; in backward it runs `fn` again with the tape on and back-propagates through that
 * copy, so a stage's activations live during its own backward only. `fn` must give the same result
 * both times (random draws must be replayed by the caller). Parameters reached inside `fn` get
 * their gradients added to `.grad` during the recompute; `params`, asked after the first run,
 * names them so that the node is recorded when only they need gradients (a block on the raw crop).
 */
import { backward } from './backward.js';
import { noGrad, withGrad } from './grad-mode.js';
import { record, needsGrad } from './tape.js';
import type { Tensor } from './tensor.js';

export function checkpoint(fn: (inputs: Tensor[]) => Tensor, inputs: Tensor[], params: () => readonly Tensor[]): Tensor {
  const out = noGrad(() => fn(inputs));
  const used = params();
  if (!needsGrad([...inputs, ...used])) return out;
  return record('checkpoint', out, [...inputs, ...used], inputs, (g, saved) => {
    // Fresh leaves over the saved inputs: the recomputed graph ends at them.
    const leaves = saved.map((t, i) => {
      const leaf = t.share();
      leaf.requiresGrad = inputs[i]!.requiresGrad;
      return leaf;
    });
    try {
      const y = withGrad(() => fn(leaves));
      try {
        backward(y, g);
      } finally {
        y.dispose();
      }
      const grads = leaves.map((leaf) => {
        const grad = leaf.grad;
        leaf.grad = null;
        return grad;
      });
      return [...grads, ...used.map(() => null)];
    } finally {
      for (const leaf of leaves) leaf.dispose();
    }
  });
}
