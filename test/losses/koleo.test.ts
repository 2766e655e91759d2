/**
 * KoLeo on the GPU against the float64 reference (normalisation included): B = 2 and B = 5, two
 * groups (one per global crop), wide rows, exact duplicates (distance 0: finite loss, no gradient
 * through that pair), the clear error below 2 rows per group, and bitwise-reproducible gradients.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { testRuntime } from '../support/runtime';
import { checkOp, printErrorTable, randnT, upload, expectDeterministicGrad } from '../support/compare';
import { makeRng } from '../ref/array';
import * as L from '../ref/losses';
import { ReefError, type Runtime } from '../../src/index';
import { koleoLoss } from '../../src/losses/koleo';

const rt: Runtime = await testRuntime();
afterAll(() => printErrorTable('KoLeo'));

const FWD = 1e-6;
const GRAD = 2e-6;

describe('KoLeo', () => {
  // [rows, dim, group]
  const cases: [number, number, number][] = [[2, 4, 2], [5, 8, 5], [8, 16, 4], [12, 300, 6], [64, 24, 32]];
  cases.forEach(([R, D, group], i) => {
    it(`${R} rows × ${D}, groups of ${group}`, async () => {
      const rng = makeRng(100 + i);
      await checkOp(rt, {
        op: 'koleo',
        inputs: [randnT([R, D], rng, 2)],
        names: ['x'],
        rng,
        gpu: ([x]) => koleoLoss(x!, { group }),
        ref: ([x]) => L.koleoLoss(x!, group, 1e-8),
        vjp: ([x], g) => [L.koleoLossBackward(x!, group, 1e-8, g.data[0]!)],
        bound: FWD,
        gradBound: GRAD,
      });
    });
  });

  it('default: one group of all rows; eps is a parameter', async () => {
    const rng = makeRng(110);
    await checkOp(rt, {
      op: 'koleo (eps 1e-3)',
      inputs: [randnT([7, 5], rng)],
      rng,
      gpu: ([x]) => koleoLoss(x!, { eps: 1e-3 }),
      ref: ([x]) => L.koleoLoss(x!, 7, 1e-3),
      vjp: ([x], g) => [L.koleoLossBackward(x!, 7, 1e-3, g.data[0]!)],
      bound: FWD,
      gradBound: GRAD,
    });
  });

  it('duplicate rows: distance 0 gives −log(eps), finite gradients', async () => {
    const rng = makeRng(111);
    const x = randnT([5, 6], rng);
    for (let k = 0; k < 6; k++) x.data[6 + k] = x.data[k]!; // row 1 = row 0
    await checkOp(rt, {
      op: 'koleo (duplicates)',
      inputs: [x],
      rng,
      gpu: ([t]) => koleoLoss(t!),
      ref: ([t]) => L.koleoLoss(t!, 5, 1e-8),
      vjp: ([t], g) => [L.koleoLossBackward(t!, 5, 1e-8, g.data[0]!)],
      bound: FWD,
      gradBound: GRAD,
    });
  });

  it('a clear error with fewer than 2 rows per group', () => {
    const x1 = upload(rt, randnT([1, 4], makeRng(1)), { requiresGrad: true });
    const x6 = upload(rt, randnT([6, 4], makeRng(2)), { requiresGrad: true });
    try {
      expect(() => koleoLoss(x1)).toThrow(ReefError);
      expect(() => koleoLoss(x1)).toThrow(/at least 2 rows/);
      expect(() => koleoLoss(x6, { group: 1 })).toThrow(/at least 2 rows/);
      expect(() => koleoLoss(x6, { group: 4 })).toThrow(/divide/);
    } finally {
      x1.dispose();
      x6.dispose();
    }
  });

  it('gradient bitwise the same on a second run', async () => {
    const x = upload(rt, randnT([16, 40], makeRng(120)), { requiresGrad: true });
    try {
      await expectDeterministicGrad(x, () => koleoLoss(x, { group: 8 }));
    } finally {
      x.dispose();
    }
  });
});
