/**
 * Activation recomputation in the CoralBay encoder (SwinViT stages and UNETR blocks): every
 * parameter gradient equals the stored-activation one (with drop-path on, so its masks must be
 * replayed by the recompute), the forward is bitwise unchanged, and far less memory is held
 * between forward and backward. (At this size the backward's peak is the gradients themselves.)
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime';
import { backward, mul, sum, tensor, tidy, type Tensor } from '../../src/index';
import { Rng } from '../../src/data/rng';
import { paramShapes, preset } from '../../src/models/swin3d/config';
import { coralBayEncoderForward } from '../../src/models/swin3d/coralbay-encoder';
import { initWeights } from '../../src/models/swin3d/init';
import { weightLookup } from '../../src/models/swin3d/state-dict';
import { zeroGrad } from '../../src/tensor/backward';
import { makeRng } from '../ref/array';
import { randnT } from '../support/compare';
import { disposeAll } from '../support/model-weights';
import { testRuntime } from '../support/runtime';

let rt: Runtime;
beforeAll(async () => {
  rt = await testRuntime();
});

describe('activation recomputation', () => {
  it('gives the same gradients (drop-path replayed) with a lower peak', async () => {
    const model = { ...preset('coralbay-tiny'), featureSize: 12 };
    const weights = initWeights(rt, paramShapes(model), 5, true);
    const W = weightLookup(weights, 'test');
    const rng = makeRng(9);
    const x = tensor(rt, Float32Array.from(randnT([2, 1, 24, 20, 16], rng).data), [2, 1, 24, 20, 16]);
    const r = tensor(rt, Float32Array.from(randnT([2, 24 * 12], rng).data), [2, 24 * 12]);

    const run = async (recompute: boolean, blockGroupBytes?: number) => {
      const draws = Rng.fromKeys(3);
      await rt.sync();
      rt.pool.resetPeak();
      const before = rt.memory().inUse;
      const out = coralBayEncoderForward(x, W, { ...model, anySide: true, recompute, blockGroupBytes, dropPath: { rate: 0.3, uniform: () => draws.float() } });
      const embedding = await out.embedding.read();
      const held = rt.memory().inUse - before; // what the tape keeps between forward and backward
      const loss = tidy(() => sum(mul(out.embedding, r)));
      backward(loss);
      await rt.sync();
      const peak = rt.memory().peak - before;
      disposeAll([loss, ...out.hidden, ...out.maps, out.embedding]);
      const grads = new Map<string, Float32Array>();
      for (const [name, t] of weights) if (t.grad) grads.set(name, await t.grad.read());
      zeroGrad([...weights.values()]);
      return { embedding, grads, peak, held };
    };
    const plain = await run(false);
    const again = await run(true);
    // UNETR blocks one sample at a time (a 1-byte group budget), as at 96³ with fs 48.
    const bySample = await run(true, 1);
    expect(Buffer.from(again.embedding.buffer).equals(Buffer.from(plain.embedding.buffer))).toBe(true);
    const relErr = (want: Float32Array, got: Float32Array) => {
      let scale = 1e-20;
      let err = 0;
      want.forEach((v, i) => {
        scale = Math.max(scale, Math.abs(v));
        err = Math.max(err, Math.abs(v - got[i]!));
      });
      return err / scale;
    };
    expect(relErr(plain.embedding, bySample.embedding)).toBeLessThan(1e-6);
    expect(plain.grads.size).toBeGreaterThan(50);
    // encoder1's residual conv maps one channel through a 1×1×1 kernel into an instance norm, which
    // removes its scale: that gradient is zero in exact arithmetic, so its values are rounding noise
    // and are checked against the model's gradient scale instead.
    const NOISE = 'encoder1.layer.conv3.conv.weight';
    const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const modelScale = Math.max(...[...plain.grads.values()].map(maxAbs));
    const worst = [0, 0];
    for (const [k, other] of [again, bySample].entries()) {
      expect([...other.grads.keys()].sort()).toEqual([...plain.grads.keys()].sort());
      for (const [name, g] of plain.grads) {
        const h = other.grads.get(name)!;
        if (name === NOISE) {
          expect(Math.max(maxAbs(g), maxAbs(h))).toBeLessThan(1e-3 * modelScale);
          continue;
        }
        const e = relErr(g, h);
        worst[k] = Math.max(worst[k]!, e);
        expect(e, name).toBeLessThan(1e-5);
      }
    }
    const mib = (b: number) => (b / 2 ** 20).toFixed(1);
    console.log(`recompute: worst relative gradient difference ${worst[0]!.toExponential(2)} (by samples ${worst[1]!.toExponential(2)}); held after forward ${mib(plain.held)} → ${mib(again.held)} MiB, peak ${mib(plain.peak)} → ${mib(again.peak)} → ${mib(bySample.peak)} MiB`);
    expect(again.held).toBeLessThan(0.5 * plain.held);
    expect(bySample.held).toBeLessThan(0.5 * plain.held);
    disposeAll([x, r, ...weights.values()] as Tensor[]);
  });
});
