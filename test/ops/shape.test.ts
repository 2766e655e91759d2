/**
 * Shape ops on the GPU against the float64 references: reshape, permute, transpose, slice, concat
 * and expand — forward and gradients. These move values without arithmetic, so forward results
 * (and the gradients of everything but expand) must match exactly; expand's gradient is a sum
 * over the broadcast axes.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { testRuntime } from '../support/runtime';
import { checkOp, download, expectNoLeak, printErrorTable, randnT, upload } from '../support/compare';
import { makeRng } from '../ref/array';
import * as R from '../ref/ops';
import * as G from '../ref/grads';
import { backward, concat, expand, permute, ReefError, reshape, slice, transpose, type Runtime, type Tensor } from '../../src/index';

const rt: Runtime = await testRuntime();
afterAll(() => printErrorTable('shape ops'));

/** Data movement: bit-exact. */
const EXACT = 0;
/** expand's gradient: an f32 sum over the broadcast axes (measured ≤ 3e-7, summing 4191 terms). */
const EXPAND_GRAD = 1.5e-6;

describe('reshape', () => {
  const cases: [number[], number[]][] = [
    [[1], [1, 1, 1]],
    [[6], [2, 3]],
    [[5, 7, 3], [7, -1]],
    [[17, 33], [-1]],
    [[2, 3, 4, 5], [4, 1, 30]],
    [[300, 257], [257, -1, 3]],
  ];
  cases.forEach(([from, to], i) => {
    it(`[${from}] → [${to}]`, async () => {
      const rng = makeRng(100 + i);
      await checkOp(rt, {
        op: 'reshape',
        inputs: [randnT(from, rng)],
        names: ['x'],
        rng,
        gpu: ([t]) => reshape(t!, to),
        ref: ([r]) => R.reshape(r!, to),
        vjp: ([r], g) => [G.reshapeBackward(g, r!.shape)],
        bound: EXACT,
      });
    });
  });

  it('rejects a wrong element count and an impossible -1', () => {
    const x = upload(rt, randnT([2, 3], makeRng(1)));
    try {
      expect(() => reshape(x, [4, 2])).toThrow(ReefError);
      expect(() => reshape(x, [4, -1])).toThrow(/-1/);
    } finally {
      x.dispose();
    }
  });
});

describe('permute / transpose', () => {
  const cases: [number[], number[]][] = [
    [[1], [0]],
    [[1, 1], [1, 0]],
    [[3, 5], [1, 0]],
    [[5, 7, 3], [2, 0, 1]],
    [[17, 1, 33], [1, 2, 0]],
    [[2, 3, 4, 5], [3, 1, 0, 2]],
    [[2, 1, 3, 1, 2, 1, 2, 3], [7, 6, 5, 4, 3, 2, 1, 0]], // rank 8, the most the kernels take
    [[65, 33, 17], [2, 1, 0]],
  ];
  cases.forEach(([shape, perm], i) => {
    it(`permute [${shape}] by [${perm}]`, async () => {
      const rng = makeRng(200 + i);
      await checkOp(rt, {
        op: 'permute',
        inputs: [randnT(shape, rng)],
        names: ['x'],
        rng,
        gpu: ([t]) => permute(t!, perm),
        ref: ([r]) => R.permute(r!, perm),
        vjp: (_, g) => [G.permuteBackward(g, perm)],
        bound: EXACT,
      });
    });
  });

  const tcases: [number[], number | undefined, number | undefined][] = [
    [[1, 1], undefined, undefined],
    [[7, 5], undefined, undefined],
    [[3, 17, 33], undefined, undefined],
    [[3, 17, 33], 0, 2],
    [[2, 3, 4, 5], 1, -1],
  ];
  tcases.forEach(([shape, a0, a1], i) => {
    it(`transpose [${shape}] axes ${a0 ?? -2},${a1 ?? -1}`, async () => {
      const rng = makeRng(250 + i);
      const r = shape.length;
      const perm = shape.map((_, k) => k);
      const x0 = ((a0 ?? -2) + r) % r;
      const x1 = ((a1 ?? -1) + r) % r;
      [perm[x0], perm[x1]] = [perm[x1]!, perm[x0]!];
      await checkOp(rt, {
        op: 'transpose',
        inputs: [randnT(shape, rng)],
        names: ['x'],
        rng,
        gpu: ([t]) => (a0 === undefined ? transpose(t!) : transpose(t!, a0, a1)),
        ref: ([rx]) => R.permute(rx!, perm),
        vjp: (_, g) => [G.permuteBackward(g, perm)],
        bound: EXACT,
      });
    });
  });

  it('rejects a non-permutation and rank above 8', () => {
    const x = upload(rt, randnT([2, 3], makeRng(1)));
    const big = upload(rt, randnT([1, 1, 1, 1, 1, 1, 1, 1, 2], makeRng(2)));
    try {
      expect(() => permute(x, [0, 0])).toThrow(/not a permutation/);
      expect(() => permute(x, [0])).toThrow(ReefError);
      expect(() => permute(big, [8, 7, 6, 5, 4, 3, 2, 1, 0])).toThrow(/rank 9/);
    } finally {
      x.dispose();
      big.dispose();
    }
  });
});

describe('slice', () => {
  const cases: [number[], number[], number[]][] = [
    [[1], [0], [1]],
    [[7], [2], [5]],
    [[5, 7], [1, 0], [4, 7]],
    [[5, 7, 3], [0, 3, 1], [5, 4, 3]],
    [[17, 33, 5], [3, 10, 0], [16, 33, 5]],
    [[2, 3, 4, 5], [1, 1, 1, 1], [2, 3, 4, 5]],
    [[127, 65], [1, 2], [126, 63]],
  ];
  cases.forEach(([shape, starts, ends], i) => {
    it(`[${shape}][${starts.map((s, k) => `${s}:${ends[k]}`)}]`, async () => {
      const rng = makeRng(300 + i);
      await checkOp(rt, {
        op: 'slice',
        inputs: [randnT(shape, rng)],
        names: ['x'],
        rng,
        gpu: ([t]) => slice(t!, starts, ends),
        ref: ([r]) => R.slice(r!, starts, ends),
        vjp: ([r], g) => [G.sliceBackward(g, r!.shape, starts, ends)],
        bound: EXACT,
      });
    });
  });

  it('rejects ranges outside the tensor', () => {
    const x = upload(rt, randnT([5, 7], makeRng(1)));
    try {
      expect(() => slice(x, [0, 0], [5, 8])).toThrow(ReefError);
      expect(() => slice(x, [0, 0], [5, 8])).toThrow(/0:8.*axis 1/);
      expect(() => slice(x, [6, 0], [6, 7])).toThrow(/axis 0/);
      expect(() => slice(x, [-1, 0], [2, 7])).toThrow(/outside/);
      expect(() => slice(x, [3, 0], [2, 7])).toThrow(/outside/);
      expect(() => slice(x, [0], [5])).toThrow(/starts and ends/);
    } finally {
      x.dispose();
    }
  });
});

describe('concat', () => {
  const cases: [number[][], number][] = [
    [[[1], [1]], 0],
    [[[2, 3], [5, 3], [1, 3]], 0],
    [[[4, 1], [4, 7], [4, 2]], 1],
    [[[3, 5, 2], [3, 5, 7]], -1],
    [[[2, 1, 5], [2, 17, 5], [2, 3, 5]], 1],
    [[[65, 33], [62, 33]], 0],
  ];
  cases.forEach(([shapes, axis], i) => {
    it(`${shapes.map((s) => `[${s}]`).join(' ++ ')} on axis ${axis}`, async () => {
      const rng = makeRng(400 + i);
      await checkOp(rt, {
        op: 'concat',
        inputs: shapes.map((s) => randnT(s, rng)),
        names: shapes.map((_, k) => `x${k}`),
        rng,
        gpu: (ts) => concat(ts, axis),
        ref: (rs) => R.concat(rs, axis),
        vjp: (_, g) => G.concatBackward(g, shapes, axis),
        bound: EXACT,
      });
    });
  });

  it('rejects pieces that differ off the axis', () => {
    const a = upload(rt, randnT([2, 3], makeRng(1)));
    const b = upload(rt, randnT([2, 4], makeRng(2)));
    try {
      expect(() => concat([a, b], 0)).toThrow(/2×4.*2×3/);
      expect(() => concat([], 0)).toThrow(ReefError);
    } finally {
      a.dispose();
      b.dispose();
    }
  });
});

describe('expand', () => {
  const cases: [number[], number[]][] = [
    [[1], [1]],
    [[1], [4, 3]],
    [[3, 1], [2, 3, 5]],
    [[5], [7, 5]],
    [[2, 1, 3], [2, 4, 3]],
    [[7, 5], [7, 5]], // same shape
    [[1, 65, 1], [127, 65, 33]],
  ];
  cases.forEach(([from, to], i) => {
    it(`[${from}] → [${to}]`, async () => {
      const rng = makeRng(500 + i);
      await checkOp(rt, {
        op: 'expand',
        inputs: [randnT(from, rng)],
        names: ['x'],
        rng,
        gpu: ([t]) => expand(t!, to),
        ref: ([r]) => R.broadcastTo(r!, to),
        vjp: ([r], g) => [G.broadcastBackward(g, r!.shape)],
        bound: EXACT,
        gradBound: EXPAND_GRAD,
      });
    });
  });

  it('rejects shapes that do not broadcast', () => {
    const x = upload(rt, randnT([3, 2], makeRng(1)));
    try {
      expect(() => expand(x, [3, 3])).toThrow(/cannot broadcast/);
      expect(() => expand(x, [2])).toThrow(ReefError);
    } finally {
      x.dispose();
    }
  });
});

describe('memory', () => {
  it('inUse returns to its starting value after forward + backward through every shape op', async () => {
    await expectNoLeak(rt, async () => {
      const rng = makeRng(600);
      const x = upload(rt, randnT([4, 1, 6], rng), { requiresGrad: true });
      const y = upload(rt, randnT([4, 3, 6], rng), { requiresGrad: true });
      const live: Tensor[] = [x, y];
      try {
        const e = expand(x, [4, 3, 6]);
        const c = concat([e, y], 1); // [4, 6, 6]
        const p = permute(c, [2, 0, 1]); // [6, 4, 6]
        const t = transpose(p); // [6, 6, 4]
        const s = slice(t, [1, 0, 1], [5, 6, 3]); // [4, 6, 2]
        const r = reshape(s, [8, -1]);
        const g = upload(rt, randnT([8, 6], rng));
        live.push(e, c, p, t, s, r, g);
        backward(r, g);
        expect(x.grad).not.toBeNull();
        expect(y.grad).not.toBeNull();
        await download(y.grad!);
      } finally {
        x.grad?.dispose();
        y.grad?.dispose();
        for (const t of live) t.dispose();
      }
    });
  });
});
