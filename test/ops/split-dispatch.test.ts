/**
 * Problems larger than one grid dimension holds (65535 workgroups) are split over several
 * dispatches or over two or three grid dimensions. A runtime limited to 10 workgroups per dimension takes
 * those paths at small sizes; results and gradients are checked against the float64 references.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import { Runtime } from '../../src/gpu/runtime';
import { add, gelu, layerNorm, matmul, MATMUL_VARIANTS, mean, softmax } from '../../src/index';
import { makeRng } from '../ref/array';
import { matmulBackward, layerNormBackward, broadcastBackward, meanBackward, softmaxBackward } from '../ref/grads';
import { matmul as refMatmul, layerNorm as refLayerNorm, add as refAdd, mean as refMean, softmax as refSoftmax, gelu as refGelu } from '../ref/ops';
import { geluBackward } from '../ref/grads';
import { checkOp, expectNoLeak, randnT } from '../support/compare';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create({ maxWorkgroupsPerDimension: 10, maxBatch: 64 });
});
afterAll(() => rt.dispose());

describe('dispatches split when a grid dimension would exceed its limit', () => {
  for (const variant of MATMUL_VARIANTS) {
    for (const transB of [false, true]) {
      it(`matmul[${variant}] 700×9·9×12${transB ? 'ᵀ' : ''} with bias: row tiles over several dispatches, forward and backward`, async () => {
        const rng = makeRng(71 + (transB ? 1 : 0));
        const bShape = transB ? [12, 9] : [9, 12];
        await expectNoLeak(rt, () =>
          checkOp(rt, {
            op: `matmul[${variant}] split`,
            inputs: [randnT([700, 9], rng), randnT(bShape, rng), randnT([12], rng)],
            gpu: ([a, b, bias]) => matmul(a!, b!, { transB, bias: bias!, variant }),
            ref: ([a, b, bias]) => refMatmul(a!, b!, { transB, bias: bias! }),
            vjp: ([a, b, bias], g) => {
              const r = matmulBackward(a!, b!, g, { transB, bias: bias! });
              return [r.da, r.db, r.dbias];
            },
            bound: 2e-6,
            rng,
          }),
        );
      });
    }
  }

  it('layerNorm over 700 rows: rows over two grid dimensions, parameter-gradient chunks over y·z', async () => {
    const rng = makeRng(81);
    await expectNoLeak(rt, () =>
      checkOp(rt, {
        op: 'layerNorm split',
        inputs: [randnT([700, 5], rng), randnT([5], rng), randnT([5], rng)],
        gpu: ([x, w, b]) => layerNorm(x!, w!, b!),
        ref: ([x, w, b]) => refLayerNorm(x!, w!, b!),
        vjp: ([x, w, b], g) => {
          const r = layerNormBackward(x!, w!, b!, g);
          return [r.dx, r.dw, r.db];
        },
        bound: 1e-6,
        rng,
      }),
    );
  });

  it('elementwise, softmax and mean over more elements and rows than 10 workgroups hold', async () => {
    const rng = makeRng(91);
    await expectNoLeak(rt, () =>
      checkOp(rt, {
        op: 'add/gelu/softmax/mean split',
        inputs: [randnT([130, 60], rng), randnT([60], rng)],
        gpu: ([a, b]) => mean(gelu(softmax(add(a!, b!))), [1]),
        ref: ([a, b]) => refMean(refGelu(refSoftmax(refAdd(a!, b!))), [1]),
        vjp: ([a, b], g) => {
          const y = refSoftmax(refAdd(a!, b!));
          const gs = softmaxBackward(y, geluBackward(y, meanBackward(g, y.shape, [1])));
          return [gs, broadcastBackward(gs, b!.shape)];
        },
        bound: 1e-6,
        gradBound: 2e-6,
        rng,
      }),
    );
  });
});
