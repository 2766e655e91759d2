/**
 * Runs `fn` over consecutive groups of `group` whole samples of x (dim 0) and concatenates the
 * results: for work that never mixes samples (window attention, UNETR blocks) but is too big to run
 * on the whole batch at once.
 */
import { concat, slice } from '../../ops/shape.js';
import type { Tensor } from '../../tensor/tensor.js';

export function bySampleGroups(x: Tensor, group: number, fn: (part: Tensor) => Tensor): Tensor {
  const B = x.shape[0]!;
  if (group >= B) return fn(x);
  const parts: Tensor[] = [];
  try {
    for (let b = 0; b < B; b += group) {
      const piece = slice(x, [b, ...x.shape.slice(1).map(() => 0)], [Math.min(B, b + group), ...x.shape.slice(1)]);
      try {
        parts.push(fn(piece));
      } finally {
        piece.dispose();
      }
    }
    return concat(parts, 0);
  } finally {
    for (const t of parts) t.dispose();
  }
}
