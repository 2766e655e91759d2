/**
 * The autograd tape (src/tensor/tape.ts, backward.ts, grad-mode.ts): errors, gradient values on
 * tiny inputs worked out by hand, accumulation into `.grad`, `noGrad`, and that the memory the tape
 * holds is returned by backward and by releaseGraph.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ReefError } from '../../src/gpu/errors';
import type { Runtime } from '../../src/gpu/runtime';
import { backward, releaseGraph, zeroGrad } from '../../src/tensor/backward';
import { tensor } from '../../src/tensor/create';
import { isGradEnabled, noGrad } from '../../src/tensor/grad-mode';
import { tidy, type Tensor } from '../../src/tensor/tensor';
import { add, mul } from '../../src/ops/binary';
import { matmul } from '../../src/ops/matmul';
import { fill, scale } from '../../src/ops/pointwise';
import { sum } from '../../src/ops/reduce';
import { reshape } from '../../src/ops/shape';
import { testRuntime } from '../support/runtime';

let rt: Runtime;
beforeAll(async () => {
  rt = await testRuntime();
});

const inUse = () => rt.memory().inUse;
const values = async (t: Tensor | null) => Array.from(await t!.read());
const disposeAll = (...ts: (Tensor | null | undefined)[]) => ts.forEach((t) => t?.dispose());

describe('backward: errors', () => {
  it('throws for a non-scalar root without a gradient', () => {
    const x = tensor(rt, [1, 2, 3], [3], { requiresGrad: true });
    const y = scale(x, 2);
    expect(() => backward(y)).toThrow(ReefError);
    expect(() => backward(y)).toThrow(/not a scalar; pass the output gradient/);
    releaseGraph(y);
    disposeAll(x, y);
  });

  it('throws for a root that does not require grad', () => {
    const x = tensor(rt, [1, 2, 3], [3]);
    const s = sum(x);
    expect(s.requiresGrad).toBe(false);
    expect(() => backward(s)).toThrow(/does not require grad/);
    disposeAll(x, s);
  });

  it('throws for a gradient of the wrong shape', () => {
    const x = tensor(rt, [1, 2, 3], [3], { requiresGrad: true });
    const y = scale(x, 2);
    const g = tensor(rt, [1, 1], [2]);
    expect(() => backward(y, g)).toThrow(/does not match/);
    releaseGraph(y);
    disposeAll(x, y, g);
  });
});

describe('backward: values', () => {
  it('a non-scalar root takes the output gradient', async () => {
    const x = tensor(rt, [1, 2, 3], [3], { requiresGrad: true });
    const y = scale(x, 2, 5);
    const g = tensor(rt, [1, 10, 100], [3]);
    backward(y, g);
    expect(await values(x.grad)).toEqual([2, 20, 200]);
    // the caller's gradient is untouched and still theirs
    expect(await values(g)).toEqual([1, 10, 100]);
    disposeAll(x, y, g, x.grad);
  });

  it('a tensor used twice gets the sum of both paths: d/dx Σ(x·x + x) = 2x + 1', async () => {
    const x = tensor(rt, [1, -2, 3], [3], { requiresGrad: true });
    const y = add(mul(x, x), x);
    const l = sum(y);
    expect(await l.item()).toBe(1 + 1 + 4 - 2 + 9 + 3);
    backward(l);
    expect(await values(x.grad)).toEqual([3, -3, 7]);
    disposeAll(x, y, l, x.grad);
  });

  it('both operands of one op being the same tensor: d/dx Σ(x+x)·x = 4x', async () => {
    const x = tensor(rt, [0.5, -1, 2], [3], { requiresGrad: true });
    const l = tidy(() => sum(mul(add(x, x), x)));
    backward(l);
    expect(await values(x.grad)).toEqual([2, -4, 8]);
    disposeAll(x, l, x.grad);
  });

  it('only inputs that require grad get one', async () => {
    const x = tensor(rt, [1, 2], [2], { requiresGrad: true });
    const c = tensor(rt, [3, 4], [2]);
    const l = tidy(() => sum(mul(x, c)));
    backward(l);
    expect(await values(x.grad)).toEqual([3, 4]);
    expect(c.grad).toBeNull();
    disposeAll(x, c, l, x.grad);
  });

  it('backward of a leaf scalar sets its gradient to one', async () => {
    const x = tensor(rt, [5], [1], { requiresGrad: true });
    backward(x);
    expect(await values(x.grad)).toEqual([1]);
    disposeAll(x, x.grad);
  });

  it('accumulates over two backward passes without zeroGrad; zeroGrad clears', async () => {
    const x = tensor(rt, [1, 2, 3], [3], { requiresGrad: true });
    const w = tensor(rt, [2, -1, 0.5], [3], { requiresGrad: true });
    const step = () => {
      const l = tidy(() => sum(mul(scale(x, 3), w))); // dl/dx = 3w, dl/dw = 3x
      backward(l);
      l.dispose();
    };
    step();
    expect(await values(x.grad)).toEqual([6, -3, 1.5]);
    step();
    expect(await values(x.grad)).toEqual([12, -6, 3]);
    expect(await values(w.grad)).toEqual([6, 12, 18]);
    const before = inUse();
    zeroGrad([x, w]);
    expect(x.grad).toBeNull();
    expect(w.grad).toBeNull();
    expect(inUse()).toBe(before - 2 * 256);
    step();
    expect(await values(x.grad)).toEqual([6, -3, 1.5]);
    zeroGrad([x, w]);
    disposeAll(x, w);
  });

  it('accumulates correctly when the first gradient shares its buffer with another tensor', async () => {
    // add's backward hands the same buffer to both inputs, so x.grad is a shared handle at first
    const x = tensor(rt, [1, 2], [2], { requiresGrad: true });
    const y = tensor(rt, [1, 1], [2], { requiresGrad: true });
    for (let i = 0; i < 2; i++) {
      const l = tidy(() => sum(add(x, y)));
      backward(l);
      l.dispose();
    }
    expect(await values(x.grad)).toEqual([2, 2]);
    expect(await values(y.grad)).toEqual([2, 2]);
    zeroGrad([x, y]);
    disposeAll(x, y);
  });
});

describe('leaf gradients own their buffers', () => {
  it('x.grad and y.grad of an add are separate buffers, so in-place work on one leaves the other', async () => {
    const x = tensor(rt, [1, 2], [2], { requiresGrad: true });
    const y = tensor(rt, [3, 4], [2], { requiresGrad: true });
    const l = tidy(() => sum(add(x, y)));
    backward(l);
    l.dispose();
    expect(x.grad!.buffer).not.toBe(y.grad!.buffer);
    fill(x.grad!, 7);
    expect(await values(x.grad)).toEqual([7, 7]);
    expect(await values(y.grad)).toEqual([1, 1]);
    zeroGrad([x, y]);
    disposeAll(x, y);
  });
});

describe('noGrad', () => {
  it('outputs made under noGrad do not require grad and have no gradFn', () => {
    const x = tensor(rt, [1, 2], [2], { requiresGrad: true });
    const before = inUse();
    const y = noGrad(() => {
      expect(isGradEnabled()).toBe(false);
      return tidy(() => mul(scale(x, 2), x));
    });
    expect(isGradEnabled()).toBe(true);
    expect(y.requiresGrad).toBe(false);
    expect(y.gradFn).toBeNull();
    const s = sum(y);
    expect(s.requiresGrad).toBe(false);
    expect(() => backward(s)).toThrow(/does not require grad/);
    disposeAll(y, s);
    expect(inUse()).toBe(before); // nothing was saved for backward
    x.dispose();
  });

  it('restores the previous mode after a throw, and nests', () => {
    expect(() =>
      noGrad(() => {
        throw new Error('x');
      }),
    ).toThrow('x');
    expect(isGradEnabled()).toBe(true);
    noGrad(() => {
      noGrad(() => undefined);
      expect(isGradEnabled()).toBe(false);
    });
    expect(isGradEnabled()).toBe(true);
  });

  it('outside noGrad the same op records a node', () => {
    const x = tensor(rt, [1, 2], [2], { requiresGrad: true });
    const y = mul(x, x);
    expect(y.requiresGrad).toBe(true);
    expect(y.gradFn?.op).toBe('mul');
    expect(y.gradFn?.saved).toHaveLength(2);
    releaseGraph(y);
    expect(y.gradFn).toBeNull();
    disposeAll(x, y);
  });
});

describe('memory held by the tape', () => {
  /** A small MLP-like forward: saved tensors for matmul, mul, reshape; returns [out, loss]. */
  function forward(x: Tensor, w: Tensor): { h: Tensor; a: Tensor; loss: Tensor } {
    const h = matmul(x, w); // saves x, w
    const a = mul(h, h); // saves h twice
    const loss = sum(reshape(a, [-1]));
    return { h, a, loss };
  }

  it('backward frees every saved tensor: memory after = memory before the forward', async () => {
    const x = tensor(rt, Array.from({ length: 12 }, (_, i) => i / 10), [3, 4], { requiresGrad: true });
    const w = tensor(rt, Array.from({ length: 8 }, (_, i) => 1 - i / 8), [4, 2], { requiresGrad: true });
    const before = inUse();
    const { h, a, loss } = tidy(() => forward(x, w));
    expect(inUse()).toBeGreaterThan(before);
    backward(loss);
    expect(h.gradFn).toBeNull();
    expect(loss.gradFn).toBeNull();
    await rt.sync();
    disposeAll(h, a, loss);
    const withGrads = inUse();
    expect(withGrads).toBe(before + 2 * 256); // x.grad and w.grad only
    zeroGrad([x, w]);
    expect(inUse()).toBe(before);
    disposeAll(x, w);
  });

  it('without backward or releaseGraph the tape keeps saved tensors alive (the check above can fail)', () => {
    const x = tensor(rt, [1, 2, 3, 4], [2, 2], { requiresGrad: true });
    const w = tensor(rt, [1, 0, 0, 1], [2, 2], { requiresGrad: true });
    const before = inUse();
    const { h, a, loss } = tidy(() => forward(x, w));
    disposeAll(h, a, loss);
    expect(inUse()).toBeGreaterThan(before); // h is still saved by mul's node
    // the node is reachable only through `loss`, which was disposed; releaseGraph still frees it
    releaseGraph(loss);
    expect(inUse()).toBe(before);
    disposeAll(x, w);
  });

  it('releaseGraph frees a forward pass that is never differentiated', () => {
    const x = tensor(rt, [1, 2, 3, 4], [2, 2], { requiresGrad: true });
    const w = tensor(rt, [1, 0, 0, 1], [2, 2], { requiresGrad: true });
    const before = inUse();
    const { h, a, loss } = tidy(() => forward(x, w));
    releaseGraph(loss);
    for (const t of [h, a, loss]) expect(t.gradFn).toBeNull();
    disposeAll(h, a, loss);
    expect(inUse()).toBe(before);
    expect(x.grad).toBeNull();
    disposeAll(x, w);
  });
});

describe('a consumed graph', () => {
  it('a second backward through the same graph is rejected', async () => {
    // backward() sets gradFn = null on every node it runs (as PyTorch frees the graph), but keeps
    // requiresGrad = true, so the consumed root looks like a leaf: a second backward silently
    // "succeeds", leaves x.grad unchanged and gives the root itself a .grad of 1.
    const x = tensor(rt, [1, 2, 3], [3], { requiresGrad: true });
    const l = tidy(() => sum(mul(x, x)));
    backward(l);
    expect(await values(x.grad)).toEqual([2, 4, 6]);
    let threw: unknown = null;
    try {
      backward(l);
    } catch (e) {
      threw = e;
    }
    const gradAfter = await values(x.grad);
    const rootGrad = l.grad;
    disposeAll(x, l, x.grad, l.grad);
    expect(threw, `second backward returned silently; x.grad = [${gradAfter}], root got .grad: ${rootGrad !== null}`).toBeInstanceOf(ReefError);
  });

  it('a second loss sharing a consumed subgraph does not silently stop at the shared tensor', async () => {
    // h = x·x feeds two losses. After backward(l1) consumed h's node, backward(l2) treats h as a leaf:
    // x.grad misses l2's contribution (2·2x) and h gets a .grad. It should throw, or be right.
    const x = tensor(rt, [1, 2, 3], [3], { requiresGrad: true });
    const h = mul(x, x);
    const l1 = sum(h);
    const l2 = tidy(() => sum(scale(h, 2)));
    backward(l1);
    let threw = false;
    try {
      backward(l2);
    } catch {
      threw = true;
    }
    const gx = await values(x.grad);
    const hasHGrad = h.grad !== null;
    releaseGraph(l2);
    disposeAll(x, h, l1, l2, x.grad, h.grad);
    if (!threw) {
      expect(hasHGrad, 'an intermediate tensor received a .grad').toBe(false);
      expect(gx).toEqual([2 + 4, 4 + 8, 6 + 12]);
    }
  });
});
