/**
 * 3D patch merging in MONAI's three orders, against float64 references: the gather (forward and
 * backward, with the ≤ 1.4 order's repeated sub-volumes adding their gradients), finite
 * differences for the reference, and the whole module (gather → LayerNorm(8C) → Linear, no bias).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime';
import { mergeGather3d, MERGE_ORDERS, type MergeOrder } from '../../src/ops/patch-merge';
import { PatchMerging3d } from '../../src/nn/patch-merging3d';
import { noGrad, tensor } from '../../src/index';
import { arr, makeRng, maxRelError, randn } from '../ref/array';
import { checkVjp } from '../ref/finite-diff';
import { layerNorm as refLayerNorm, matmul as refMatmul } from '../ref/ops';
import { mergeGather, mergeGatherBackward } from '../ref/merge';
import { checkOp, expectNoLeak, randnT } from '../support/compare';
import { testRuntime } from '../support/runtime';

let rt: Runtime;
beforeAll(async () => {
  rt = await testRuntime();
});

const ORDERS = Object.keys(MERGE_ORDERS) as MergeOrder[];

describe('float64 merge-gather reference', () => {
  it('the ≤ 1.4 order reads (0,1,0) and (0,0,1) twice and never (1,1,0) or (0,1,1)', () => {
    // x[d,h,w] = 100d + 10h + w on a 2×2×2 volume with one channel: the output lists the reads.
    const x = arr([1, 2, 2, 2, 1], [0, 1, 10, 11, 100, 101, 110, 111]);
    expect(Array.from(mergeGather(x, 'merging').data)).toEqual([0, 100, 10, 1, 101, 10, 1, 111]);
    expect(Array.from(mergeGather(x, 'merging-1.5').data)).toEqual([0, 100, 10, 1, 110, 101, 11, 111]);
    expect(Array.from(mergeGather(x, 'mergingv2').data)).toEqual([0, 1, 10, 11, 100, 101, 110, 111]);
  });

  for (const order of ORDERS) {
    it(`${order}: backward matches central finite differences (odd sizes, padding)`, () => {
      const rng = makeRng(3);
      const errs = checkVjp({
        f: ([x]) => mergeGather(x!, order),
        inputs: [randn([1, 3, 2, 5, 2], rng)],
        vjp: ([x], g) => [mergeGatherBackward(x!.shape, g, order)],
        rng,
      });
      expect(errs[0]).toBeLessThan(1e-6);
    });
  }
});

describe('mergeGather3d on the GPU', () => {
  const shapes = [
    [1, 2, 2, 2, 1],
    [2, 3, 5, 4, 3],
    [1, 1, 1, 1, 4],
    [1, 7, 6, 5, 8],
  ];
  for (const order of ORDERS) {
    shapes.forEach((shape, i) => {
      it(`${order}: [${shape}] forward and backward`, async () => {
        const rng = makeRng(60 + i);
        await expectNoLeak(rt, () =>
          checkOp(rt, {
            op: `mergeGather3d(${order})`,
            inputs: [randnT(shape, rng)],
            gpu: ([x]) => mergeGather3d(x!, order),
            ref: ([x]) => mergeGather(x!, order),
            vjp: ([x], g) => [mergeGatherBackward(x!.shape, g, order)],
            bound: 0,
            gradBound: 2e-7,
            rng,
          }),
        );
      });
    });
  }
});

describe('PatchMerging3d module', () => {
  it('gather → LayerNorm(8C) → Linear(8C→2C, no bias) matches the float64 composition', async () => {
    const rng = makeRng(77);
    const C = 3;
    const m = new PatchMerging3d(rt, C, 'merging', 5);
    // Non-trivial norm parameters, so a swapped weight and bias cannot pass.
    rt.write(m.norm.weight.buffer, Float32Array.from(randn([8 * C], rng, 0.5).data, (v) => 1 + v));
    rt.write(m.norm.bias.buffer, Float32Array.from(randn([8 * C], rng).data));
    const xa = randn([1, 5, 4, 3, C], rng);
    const x = tensor(rt, xa.data, xa.shape);
    const out = noGrad(() => m.forward(x));
    const w = arr(m.reduction.weight.shape, await m.reduction.weight.read());
    const g = arr([8 * C], await m.norm.weight.read());
    const b = arr([8 * C], await m.norm.bias.read());
    const ref = refMatmul(refLayerNorm(mergeGather(xa, 'merging'), g, b), w, { transB: true });
    expect([...out.shape]).toEqual(ref.shape);
    expect(maxRelError(await out.read(), ref.data)).toBeLessThan(2e-6);
    expect(m.namedParameters().map(([n]) => n)).toEqual(['norm.weight', 'norm.bias', 'reduction.weight']);
    x.dispose();
    out.dispose();
    m.dispose();
  });
});
