/**
 * Reverse-mode differentiation over the tape. Nodes run in reverse topological order; each node's
 * saved tensors and its output gradient are freed as soon as it has run, so peak memory during
 * backward stays near that of the forward pass. Leaf gradients accumulate into `.grad`.
 */
import { ReefError } from '../gpu/errors.js';
import { add } from '../ops/binary.js';
import { accumulate } from '../ops/pointwise.js';
import { sameShape } from '../ops/geometry.js';
import { empty } from './create.js';
import { ones } from './fill.js';
import { noGrad } from './grad-mode.js';
import { releaseNode } from './tape.js';
import { keep, type Tensor } from './tensor.js';

function freedError(t: Tensor): ReefError {
  return new ReefError(`backward: the graph behind ${t.describe()} was already freed by backward() or releaseGraph(); run the forward pass again`);
}

/** A leaf: a tensor no op made (parameters, inputs), as opposed to one whose op was freed. */
function isLeaf(t: Tensor): boolean {
  return !t.gradFn && !t.graphFreed;
}

function topoOrder(root: Tensor, strict = true): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length) {
    const [t, done] = stack.pop()!;
    if (done) {
      order.push(t);
      continue;
    }
    if (seen.has(t) || !t.gradFn) continue;
    seen.add(t);
    stack.push([t, true]);
    for (const i of t.gradFn.inputs) {
      if (strict && i.graphFreed && i.requiresGrad) throw freedError(i);
      if (i.gradFn && !seen.has(i)) stack.push([i, false]);
    }
  }
  return order; // inputs before outputs
}

/** Back-propagates from `root` (a scalar, unless `grad` is given), accumulating leaf `.grad`s. */
export function backward(root: Tensor, grad?: Tensor): void {
  if (root.graphFreed) throw freedError(root);
  if (!root.requiresGrad) throw new ReefError(`backward: ${root.describe()} does not require grad (no input had requiresGrad, or it was made under noGrad)`);
  if (!grad && root.size !== 1) throw new ReefError(`backward: ${root.describe()} is not a scalar; pass the output gradient`);
  if (grad && (!sameShape(grad.shape, root.shape) || grad.dtype !== root.dtype || grad.rt !== root.rt)) {
    throw new ReefError(`backward: gradient ${grad.describe()} does not match ${root.describe()} (shape, element type and runtime must agree)`);
  }
  noGrad(() => {
    const grads = new Map<Tensor, Tensor>();
    const seed = grad ? grad.share() : ones(root.rt, root.shape, { dtype: root.dtype });
    keep(seed);
    if (!root.gradFn) {
      addLeafGrad(root, seed);
      return;
    }
    grads.set(root, seed);
    const order = topoOrder(root);
    let k = order.length - 1;
    try {
      for (; k >= 0; k--) {
        const t = order[k]!;
        const node = t.gradFn!;
        const g = grads.get(t);
        grads.delete(t);
        t.gradFn = null; // the graph is consumed, as in PyTorch without retain_graph
        t.graphFreed = true;
        if (!g) {
          releaseNode(node);
          continue;
        }
        let gins: (Tensor | null)[];
        try {
          gins = node.backward(g, node.saved);
        } finally {
          releaseNode(node);
          g.dispose();
        }
        gins.forEach((gi) => gi && keep(gi));
        node.inputs.forEach((input, i) => {
          const gi = gins[i];
          if (!gi) return;
          if (!input.requiresGrad) return gi.dispose();
          if (!sameShape(gi.shape, input.shape) || gi.dtype !== input.dtype) {
            gi.dispose();
            throw new ReefError(`backward of ${node.op}: gradient ${gi.describe()} does not match input ${input.describe()}`);
          }
          if (isLeaf(input)) return addLeafGrad(input, gi);
          const prev = grads.get(input);
          grads.set(input, prev ? sumInto(prev, gi) : gi);
        });
      }
    } finally {
      // On an error part-way, free what the remaining nodes hold so nothing leaks.
      for (let j = k - 1; j >= 0; j--) {
        const t = order[j]!;
        if (t.gradFn) releaseNode(t.gradFn);
        t.gradFn = null;
        t.graphFreed = true;
      }
      for (const g of grads.values()) g.dispose();
    }
  });
}

function addLeafGrad(leaf: Tensor, g: Tensor): void {
  leaf.grad = leaf.grad ? keep(sumInto(leaf.grad, g)) : owned(g);
}

/**
 * A leaf's `.grad` owns its buffer: a gradient may arrive sharing one with another tensor (the two
 * inputs of an add receive the same buffer), and in-place work on one `.grad` (clipping, scaling)
 * must not change another.
 */
function owned(g: Tensor): Tensor {
  if (!g.storage.shared) return g;
  const copy = keep(empty(g.rt, g.shape, g.dtype, 'grad'));
  g.rt.copy(g.buffer, 0, copy.buffer, 0, g.byteSize);
  g.dispose();
  return copy;
}

/**
 * total + g, consuming both handles. In place when `total` owns its buffer; a gradient may share
 * its buffer with another (reshape, or the two inputs of an add), and then a new one is made.
 */
function sumInto(total: Tensor, g: Tensor): Tensor {
  if (!total.storage.shared) {
    accumulate(total, g);
    g.dispose();
    return total;
  }
  const out = add(total, g);
  total.dispose();
  g.dispose();
  return out;
}

/**
 * Frees the tape behind `root` without running backward (a forward pass made with gradients on
 * whose result will not be differentiated). Inference should run under `noGrad` instead.
 */
export function releaseGraph(root: Tensor): void {
  for (const t of topoOrder(root, false)) {
    releaseNode(t.gradFn!);
    t.gradFn = null;
    t.graphFreed = true;
  }
}

/** Clears `.grad` of the given tensors (before the next accumulation window). */
export function zeroGrad(params: Iterable<Tensor>): void {
  for (const p of params) {
    p.grad?.dispose();
    p.grad = null;
  }
}
