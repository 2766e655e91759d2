/**
 * The pointwise and normalisation pieces of MONAI's UnetResBlock: LeakyReLU(0.01) and
 * InstanceNorm3d(affine=False, eps 1e-5), forward and backward against float64 references.
 */
import { beforeAll, describe, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime';
import { instanceNorm, leakyRelu } from '../../src/index';
import { arr, makeRng, type Arr } from '../ref/array';
import { layerNorm as refLayerNorm } from '../ref/ops';
import { layerNormBackward } from '../ref/grads';
import { checkOp, expectNoLeak, randnT } from '../support/compare';
import { testRuntime } from '../support/runtime';

let rt: Runtime;
beforeAll(async () => {
  rt = await testRuntime();
});

const refLeaky = (x: Arr, s: number): Arr => arr(x.shape, Array.from(x.data, (v) => (v >= 0 ? v : s * v)));
const refLeakyBackward = (x: Arr, g: Arr, s: number): Arr => arr(x.shape, Array.from(g.data, (v, i) => (x.data[i]! >= 0 ? v : s * v)));

/** Instance norm as LayerNorm over each (b, c) row of the flattened spatial axes. */
const rows = (x: Arr): Arr => arr([x.shape[0]! * x.shape[1]!, x.data.length / (x.shape[0]! * x.shape[1]!)], x.data);

describe('leakyRelu', () => {
  for (const [shape, slope] of [[[1], 0.01], [[3, 5, 7], 0.01], [[2, 4, 3, 5, 6], 0.2]] as [number[], number][]) {
    it(`[${shape}], slope ${slope}`, async () => {
      const rng = makeRng(shape.length * 7);
      await expectNoLeak(rt, () =>
        checkOp(rt, {
          op: 'leakyRelu',
          inputs: [randnT(shape, rng)],
          gpu: ([x]) => leakyRelu(x!, slope),
          ref: ([x]) => refLeaky(x!, slope),
          vjp: ([x], g) => [refLeakyBackward(x!, g, slope)],
          bound: 1e-7,
          rng,
        }),
      );
    });
  }
});

describe('instanceNorm (channels first, no affine)', () => {
  for (const shape of [[1, 1, 3, 4, 5], [2, 3, 5, 4, 7], [1, 4, 9, 8, 10]]) {
    it(`[${shape}]`, async () => {
      const rng = makeRng(shape.reduce((a, b) => a + b, 0));
      await expectNoLeak(rt, () =>
        checkOp(rt, {
          op: 'instanceNorm',
          inputs: [randnT(shape, rng, 2)],
          gpu: ([x]) => instanceNorm(x!),
          ref: ([x]) => arr(x!.shape, refLayerNorm(rows(x!), null, null).data),
          vjp: ([x], g) => [arr(x!.shape, layerNormBackward(rows(x!), null, null, rows(g)).dx.data)],
          bound: 1e-6,
          gradBound: 2e-6,
          rng,
        }),
      );
    });
  }
});
