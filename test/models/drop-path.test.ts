/**
 * Stochastic depth in the Swin blocks: a sample whose two branches are dropped leaves the block
 * unchanged (bitwise); kept branches at a vanishing rate give the plain block; the rate ramps
 * linearly from 0 over the blocks, as MONAI's, so the first block draws nothing; rate 0 is the
 * plain forward, bitwise.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime';
import { tensor } from '../../src/index';
import { swinViTConfig, swinViTParamShapes } from '../../src/models/swin3d/config';
import { swinBlock, swinViTForward } from '../../src/models/swin3d/swin-vit';
import { makeRng } from '../ref/array';
import { randnT } from '../support/compare';
import { disposeAll, hostWeights, lookup, uploadWeights } from '../support/model-weights';
import { testRuntime } from '../support/runtime';

let rt: Runtime;
beforeAll(async () => {
  rt = await testRuntime();
});

const cfg = { ...swinViTConfig({ featureSize: 12 }), depths: [2, 2, 2, 2], heads: [3, 6, 12, 24], normalize: false };
const SHAPES = swinViTParamShapes(swinViTConfig({ featureSize: 12 }));

describe('drop-path', () => {
  it('drops whole samples; a vanishing rate is the plain block; the rate ramps from 0 over the blocks', async () => {
    const rng = makeRng(7);
    const weights = uploadWeights(rt, hostWeights(SHAPES, 3));
    const W = lookup(weights);
    const shape = [2, 5, 4, 3, 12];
    const xs = Float32Array.from(randnT(shape, rng).data);
    const x = tensor(rt, xs, shape);
    const block = (drop?: { p: number; uniform: () => number }) => swinBlock(x, W, 'swinViT.layers1.0.blocks.1', 3, [5, 4, 3], [0, 0, 0], [7, 7, 7], drop);
    const per = xs.length / 2;
    try {
      const plain = await block().read();
      // Sample 0 draws 0 (dropped) for both branches, sample 1 draws 0.999 (kept).
      let calls = 0;
      const draws = () => (calls++ % 2 === 0 ? 0 : 0.999);
      const dropped = await block({ p: 0.5, uniform: draws }).read();
      expect(calls).toBe(4);
      expect(Buffer.from(dropped.buffer, 0, per * 4).equals(Buffer.from(xs.buffer, 0, per * 4))).toBe(true);
      expect(dropped.subarray(per).some((v, i) => v !== plain[per + i])).toBe(true); // kept, scaled by 2
      const tiny = await block({ p: 1e-7, uniform: () => 0.5 }).read();
      let err = 0;
      let scale = 0;
      plain.forEach((v, i) => {
        err = Math.max(err, Math.abs(tiny[i]! - v));
        scale = Math.max(scale, Math.abs(v));
      });
      expect(err / scale).toBeLessThan(1e-5);
      expect(() => block({ p: 1, uniform: () => 0.5 })).toThrow(/drop-path rate 1 must be below 1/);

      // The whole SwinViT: 8 blocks, the first at rate 0 (no draws), the others 2 draws per sample.
      const input = tensor(rt, Float32Array.from(randnT([2, 1, 10, 8, 6], rng).data), [2, 1, 10, 8, 6]);
      const base = swinViTForward(input, W, cfg);
      const zero = swinViTForward(input, W, { ...cfg, dropPath: { rate: 0, uniform: () => 0 } });
      for (let i = 0; i < 5; i++) expect(Buffer.from((await zero[i]!.read()).buffer).equals(Buffer.from((await base[i]!.read()).buffer)), `hidden ${i}`).toBe(true);
      let n = 0;
      const ramped = swinViTForward(input, W, { ...cfg, dropPath: { rate: 0.2, uniform: () => (n++, 0.9) } });
      expect(n).toBe(2 * 2 * 7);
      disposeAll([...base, ...zero, ...ramped, input]);
    } finally {
      x.dispose();
      disposeAll([...weights.values()]);
    }
  });
});
