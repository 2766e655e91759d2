/**
 * Transposed Conv3d, kernel = stride = 2, no bias (MONAI UnetrUpBlock), against a float64 reference
 * written from the definition, forward and backward; the reference's VJP against finite differences.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime';
import { convTranspose3dK2 } from '../../src/nn/conv-transpose3d';
import { arr, makeRng, randn, type Arr } from '../ref/array';
import { checkVjp } from '../ref/finite-diff';
import { checkOp, expectNoLeak, randnT } from '../support/compare';
import { testRuntime } from '../support/runtime';

let rt: Runtime;
beforeAll(async () => {
  rt = await testRuntime();
});

function forEachTerm(xs: readonly number[], co: number, visit: (o: number, xi: number, wi: number) => void): number[] {
  const [B, Ci, D, H, W] = xs as [number, number, number, number, number];
  for (let b = 0; b < B; b++)
    for (let c = 0; c < co; c++)
      for (let d = 0; d < 2 * D; d++)
        for (let h = 0; h < 2 * H; h++)
          for (let w = 0; w < 2 * W; w++) {
            const o = (((b * co + c) * 2 * D + d) * 2 * H + h) * 2 * W + w;
            for (let ci = 0; ci < Ci; ci++) {
              const xi = (((b * Ci + ci) * D + (d >> 1)) * H + (h >> 1)) * W + (w >> 1);
              const wi = (((ci * co + c) * 2 + (d & 1)) * 2 + (h & 1)) * 2 + (w & 1);
              visit(o, xi, wi);
            }
          }
  return [B, co, 2 * D, 2 * H, 2 * W];
}

function ref(x: Arr, w: Arr): Arr {
  const shape = forEachTerm(x.shape, w.shape[1]!, () => undefined);
  const out = arr(shape);
  forEachTerm(x.shape, w.shape[1]!, (o, xi, wi) => (out.data[o]! += x.data[xi]! * w.data[wi]!));
  return out;
}

function refBackward(x: Arr, w: Arr, g: Arr): [Arr, Arr] {
  const dx = arr(x.shape);
  const dw = arr(w.shape);
  forEachTerm(x.shape, w.shape[1]!, (o, xi, wi) => {
    dx.data[xi]! += g.data[o]! * w.data[wi]!;
    dw.data[wi]! += g.data[o]! * x.data[xi]!;
  });
  return [dx, dw];
}

describe('convTranspose3dK2', () => {
  it('float64 reference VJP matches central finite differences', () => {
    const rng = makeRng(9);
    const errs = checkVjp({ f: ([x, w]) => ref(x!, w!), inputs: [randn([1, 2, 2, 1, 3], rng), randn([2, 3, 2, 2, 2], rng)], vjp: ([x, w], g) => refBackward(x!, w!, g), rng });
    for (const e of errs) expect(e).toBeLessThan(1e-6);
  });

  for (const [xs, co] of [[[1, 1, 1, 1, 1], 1], [[2, 3, 2, 3, 1], 4], [[1, 6, 3, 5, 4], 5]] as [number[], number][]) {
    it(`x [${xs}] → ${co} channels, forward and backward`, async () => {
      const rng = makeRng(xs.reduce((a, b) => a * 3 + b, co));
      await expectNoLeak(rt, () =>
        checkOp(rt, {
          op: 'convTranspose3dK2',
          inputs: [randnT(xs, rng), randnT([xs[1]!, co, 2, 2, 2], rng)],
          names: ['x', 'weight'],
          gpu: ([x, w]) => convTranspose3dK2(x!, w!),
          ref: ([x, w]) => ref(x!, w!),
          vjp: ([x, w], g) => refBackward(x!, w!, g),
          bound: 1e-6,
          gradBound: 2e-6,
          rng,
        }),
      );
    });
  }
});
