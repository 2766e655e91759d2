/**
 * Inputs and call patterns that once went wrong: rows of huge negative values (attention masks),
 * mismatched gradient types, a caller reusing the list given to concat, results nested deep in a
 * tidy, an op whose backward throws, a parameter that first gets a gradient late.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime';
import { backward, concat, crossEntropySoft, logSoftmax, releaseGraph, scale, softmax, sum, tensor, tidy, zeroGrad, type Tensor } from '../../src/index';
import { record } from '../../src/tensor/tape';
import { AdamW } from '../../src/train/adamw';
import { arr, maxRelError } from '../ref/array';
import { crossEntropySoft as refCe, logSoftmax as refLogSoftmax, softmax as refSoftmax } from '../ref/ops';
import { crossEntropySoftBackward } from '../ref/grads';
import { testRuntime } from '../support/runtime';

let rt: Runtime;
beforeAll(async () => {
  rt = await testRuntime();
});

const FLT_MIN = -3.4028234663852886e38; // torch.finfo(float32).min, a usual mask fill

describe('rows of huge negative values (masks)', () => {
  const data = [FLT_MIN, FLT_MIN, FLT_MIN, 1, 2, 3];
  it('softmax and logSoftmax stay finite and match the reference', async () => {
    const x = tensor(rt, data, [2, 3]);
    const s = softmax(x);
    const l = logSoftmax(x);
    // Row 0 is uniform whatever its (equal) values; row 1 from the reference. (The reference's
    // x − logsumexp form would lose row 0 to absorption at 3.4e38 even in float64.)
    const row1 = arr([1, 3], [1, 2, 3]);
    const expectSoft = [1 / 3, 1 / 3, 1 / 3, ...refSoftmax(row1).data];
    const expectLog = [-Math.log(3), -Math.log(3), -Math.log(3), ...refLogSoftmax(row1).data];
    expect(maxRelError(await s.read(), expectSoft)).toBeLessThan(1e-6);
    expect(maxRelError(await l.read(), expectLog)).toBeLessThan(1e-6);
    for (const t of [x, s, l]) t.dispose();
  });

  it('crossEntropySoft stays finite, and targets without requiresGrad get no gradient', async () => {
    const x = tensor(rt, data, [2, 3], { requiresGrad: true });
    const t = tensor(rt, [1 / 3, 1 / 3, 1 / 3, 0.2, 0.3, 0.5], [2, 3]);
    const loss = crossEntropySoft(x, t);
    // Row 0: uniform probabilities against uniform targets, loss ln 3 and gradient (p − t)/2 = 0.
    // Row 1 from the reference. (The reference's lse − x form loses row 0 to absorption.)
    const row1 = { x: arr([1, 3], [1, 2, 3]), t: arr([1, 3], [0.2, 0.3, 0.5]) };
    expect(maxRelError([await loss.item()], [(Math.log(3) + refCe(row1.x, row1.t)) / 2])).toBeLessThan(1e-6);
    backward(loss);
    const { dlogits } = crossEntropySoftBackward(row1.x, row1.t, 0.5);
    expect(maxRelError(await x.grad!.read(), [0, 0, 0, ...dlogits.data])).toBeLessThan(1e-6);
    expect(t.grad).toBeNull();
    zeroGrad([x]);
    for (const u of [x, t, loss]) u.dispose();
  });
});

describe('autograd guards', () => {
  it('backward rejects a gradient of another element type', () => {
    if (!rt.caps.f16) {
      console.log('f16 gradient check skipped: this adapter has no shader-f16');
      return;
    }
    const x = tensor(rt, [1, 2], [2], { requiresGrad: true });
    const y = scale(x, 2);
    const g = tensor(rt, [1, 1], [2], { dtype: 'f16' });
    expect(() => backward(y, g)).toThrow(/does not match/);
    releaseGraph(y);
    for (const t of [x, y, g]) t.dispose();
  });

  it('concat keeps its own list of inputs: the caller may empty theirs', async () => {
    const a = tensor(rt, [1, 2], [2], { requiresGrad: true });
    const b = tensor(rt, [3], [1], { requiresGrad: true });
    const parts = [a, b];
    const c = concat(parts, 0);
    parts.length = 0;
    const s = sum(scale(c, 3));
    backward(s);
    expect(Array.from(await a.grad!.read())).toEqual([3, 3]);
    expect(Array.from(await b.grad!.read())).toEqual([3]);
    zeroGrad([a, b]);
    for (const t of [a, b, c, s]) t.dispose();
  });

  it('tidy keeps returned tensors however deep they are nested', async () => {
    const out = tidy(() => ({ a: { b: { c: [tensor(rt, [5], [1])] } } }));
    const t = out.a.b.c[0]!;
    expect(t.isDisposed).toBe(false);
    expect(await t.item()).toBe(5);
    t.dispose();
  });

  it('an op whose backward throws frees the rest of the graph and everything it held', async () => {
    const before = rt.memory().inUse;
    const x = tensor(rt, [1, 2, 3], [3], { requiresGrad: true });
    const h = scale(x, 2);
    const bad = record('failing op', scale(h, 1), [h], [h], () => {
      throw new Error('backward failed on purpose');
    }) as Tensor;
    const s = sum(bad);
    expect(() => backward(s)).toThrow(/on purpose/);
    for (const t of [x, h, bad, s]) t.dispose();
    await rt.sync();
    expect(rt.memory().inUse).toBe(before);
  });
});

describe('AdamW', () => {
  it('bias correction counts each parameter’s own updates (a late first gradient is not inflated)', async () => {
    const early = tensor(rt, [1], [1], { requiresGrad: true });
    const late = tensor(rt, [1], [1], { requiresGrad: true });
    const opt = new AdamW([early, late], { lr: 0.1, weightDecay: 0 });
    for (let step = 0; step < 3; step++) {
      early.grad = tensor(rt, [0.5], [1]);
      if (step === 2) late.grad = tensor(rt, [0.5], [1]);
      opt.update();
      zeroGrad([early, late]);
    }
    // Adam's first update of a parameter moves it by lr·ĝ/√v̂ = lr (ε aside).
    expect(await late.item()).toBeCloseTo(1 - 0.1, 5);
    expect(opt.paramSteps).toEqual([3, 1]);
    opt.dispose();
    early.dispose();
    late.dispose();
  });
});
