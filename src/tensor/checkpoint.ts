/**
 * Activation recomputation. `checkpoint` runs `fn` without a tape and records one node holding only
 * the inputs; in backward it runs `fn` again with the tape on and back-propagates through that
 * copy, so a stage's activations live during its own backward only. `fn` must give the same result
 * both times (random draws must be replayed by the caller). Leaf parameters reached inside `fn` get
 * their gradients added to `.grad` during the recompute; `params`, asked after the first run,
 * names them so that the node is recorded when only they need gradients (a block on the raw crop).
 * A parameter that is itself computed (an f16 copy of an f32 master) must not be back-propagated
 * through from inside the recompute, which would consume its node before the outer pass reaches
 * it: `fn` passes each parameter through `param`, which during the recompute swaps it for a fresh
 * leaf, and the leaf's gradient becomes the node's gradient for that parameter.
 */
import { backward } from './backward.js';
import { noGrad, withGrad } from './grad-mode.js';
import { record, needsGrad } from './tape.js';
import type { Tensor } from './tensor.js';

export type ParamSwap = (t: Tensor) => Tensor;

export function checkpoint(fn: (inputs: Tensor[], param: ParamSwap) => Tensor, inputs: Tensor[], params: () => readonly Tensor[]): Tensor {
  const out = noGrad(() => fn(inputs, (t) => t));
  const used = params();
  if (!needsGrad([...inputs, ...used])) return out;
  return record('checkpoint', out, [...inputs, ...used], inputs, (g, saved) => {
    // Fresh leaves over the saved inputs (and computed parameters): the recomputed graph ends at them.
    const leafOf = (t: Tensor, requiresGrad: boolean) => {
      const leaf = t.share();
      leaf.requiresGrad = requiresGrad;
      return leaf;
    };
    const leaves = saved.map((t, i) => leafOf(t, inputs[i]!.requiresGrad));
    const swapped = new Map(used.filter((p) => p.gradFn).map((p) => [p, leafOf(p, true)] as const));
    try {
      const y = withGrad(() => fn(leaves, (t) => swapped.get(t) ?? t));
      try {
        backward(y, g);
      } finally {
        y.dispose();
      }
      const gradOf = (leaf: Tensor | undefined) => {
        if (!leaf) return null;
        const grad = leaf.grad;
        leaf.grad = null;
        return grad;
      };
      return [...leaves.map(gradOf), ...used.map((p) => gradOf(swapped.get(p)))];
    } finally {
      for (const leaf of [...leaves, ...swapped.values()]) leaf.dispose();
    }
  });
}
