/**
 * SigReg (Epps–Pulley on random unit slices) on the GPU against the float64 reference: the loss and
 * its gradient w.r.t. Z for several sizes, grids and scales; the slices (unit columns, reproducible
 * from the seed); bitwise-reproducible gradients.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { testRuntime } from '../support/runtime';
import { checkOp, expectDeterministicGrad, printErrorTable, randnT } from '../support/compare';
import { arr, makeRng as refRng } from '../ref/array';
import * as L from '../ref/losses';
import { makeRng, ReefError, type Runtime, tensor } from '../../src/index';
import { sigregLoss, sigregSlices, sigregSliceValues } from '../../src/losses/sigreg';

const rt: Runtime = await testRuntime();
afterAll(() => printErrorTable('SigReg'));

const FWD = 2e-6;
const GRAD = 5e-6;

describe('SigReg slices', () => {
  it('unit-norm columns, the same for the same seed, different for another', () => {
    const a = sigregSliceValues(7, 5, makeRng(3));
    const b = sigregSliceValues(7, 5, makeRng(3));
    const c = sigregSliceValues(7, 5, makeRng(4));
    expect([...a]).toEqual([...b]);
    expect([...a]).not.toEqual([...c]);
    for (let m = 0; m < 5; m++) {
      let s = 0;
      for (let d = 0; d < 7; d++) s += a[d * 5 + m]! ** 2;
      expect(s).toBeCloseTo(1, 6);
    }
  });
});

describe('SigReg loss', () => {
  // [N, D, M, Z scale, tMax, knots]
  const cases: [number, number, number, number, number, number][] = [
    [2, 3, 4, 1, 3, 17],
    [16, 8, 32, 1, 3, 17],
    [64, 32, 256, 1, 3, 17],
    [33, 10, 20, 3, 3, 17],
    [20, 6, 9, 0.5, 2, 9],
  ];
  cases.forEach(([N, D, M, scale, tMax, knots], i) => {
    it(`Z ${N}×${D} (std ${scale}), ${M} slices, t ∈ [0, ${tMax}] on ${knots} points`, async () => {
      const rng = refRng(130 + i);
      const A = arr([D, M], sigregSliceValues(D, M, makeRng(500 + i)));
      const slices = tensor(rt, A.data, A.shape);
      try {
        await checkOp(rt, {
          op: 'sigreg',
          inputs: [randnT([N, D], rng, scale)],
          names: ['z'],
          rng,
          gpu: ([z]) => sigregLoss(z!, slices, { tMax, knots }),
          ref: ([z]) => L.sigreg(z!, A, tMax, knots),
          vjp: ([z], g) => [L.sigregBackwardZ(z!, A, g.data[0]!, tMax, knots)],
          bound: FWD,
          gradBound: GRAD,
        });
      } finally {
        slices.dispose();
      }
    });
  });

  it('rejects slices that require grad and bad grids', () => {
    const z = tensor(rt, new Float32Array(12), [3, 4]);
    const a = sigregSlices(rt, 4, 6, makeRng(1));
    const ag = tensor(rt, new Float32Array(24), [4, 6], { requiresGrad: true });
    try {
      expect(() => sigregLoss(z, ag)).toThrow(ReefError);
      expect(() => sigregLoss(z, a, { knots: 1 })).toThrow(ReefError);
      expect(() => sigregLoss(z, a, { knots: 65 })).toThrow(ReefError);
    } finally {
      for (const t of [z, a, ag]) t.dispose();
    }
  });

  it('gradient bitwise the same on a second run', async () => {
    const z = tensor(rt, randnT([40, 16], refRng(140)).data, [40, 16], { requiresGrad: true });
    const a = sigregSlices(rt, 16, 64, makeRng(7));
    try {
      await expectDeterministicGrad(z, () => sigregLoss(z, a));
    } finally {
      z.dispose();
      a.dispose();
    }
  });
});
