/**
 * A model block under activation recomputation (tensor/checkpoint.ts): the weights it looks up are
 * collected on the first run, so the recorded node knows its parameters, and drop-path's random
 * draws are recorded then and replayed by the recompute, which must see the same masks.
 */
import { checkpoint } from '../../tensor/checkpoint.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { DropPath, WeightLookup } from './swin-vit.js';

export function recomputed(x: Tensor, W: WeightLookup, dropPath: DropPath | undefined, fn: (x: Tensor, W: WeightLookup, dropPath: DropPath | undefined) => Tensor): Tensor {
  const used = new Set<Tensor>();
  const draws: number[] = [];
  let firstRun = true;
  let next = 0;
  const replaying: DropPath | undefined = dropPath && {
    rate: dropPath.rate,
    uniform: () => {
      if (!firstRun) return draws[next++]!;
      const v = dropPath.uniform();
      draws.push(v);
      return v;
    },
  };
  return checkpoint(
    ([input], param) => {
      next = 0;
      const tracking: WeightLookup = (name) => {
        const t = W(name);
        if (firstRun) used.add(t);
        return param(t);
      };
      try {
        return fn(input!, tracking, replaying);
      } finally {
        firstRun = false;
      }
    },
    [x],
    () => [...used],
  );
}
