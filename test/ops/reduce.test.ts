/**
 * sum and mean over any axes (all when omitted or empty), with and without keepDims, on the GPU
 * against the float64 references — forward and the gradient.
 *
 * Error model: one workgroup (64 lanes) per output element; each lane keeps a running f32 sum of
 * every 64th reduced element, then the lanes are combined in a tree. The backward is a broadcast
 * (exact for sum; one rounding by 1/count for mean).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { testRuntime } from '../support/runtime';
import { checkOp, download, expectNoLeak, expectRel, printErrorTable, randnT, upload } from '../support/compare';
import { arr, makeRng } from '../ref/array';
import * as R from '../ref/ops';
import * as G from '../ref/grads';
import { backward, mean, ReefError, sum, sumTo, type Runtime, type Tensor } from '../../src/index';
import { REDUCE_VARIANTS } from '../../src/ops/reduce';

const rt: Runtime = await testRuntime();
afterAll(() => printErrorTable('reduce'));

/** f32 summation of up to 2.7e5 terms, relative to the largest |sum| (measured ≤ 3e-7). */
const SUM_FWD = 1e-6;
/** The gradient of sum is a broadcast copy: exact. */
const SUM_GRAD = 0;
/** The gradient of mean: g·f32(1/count), two roundings (measured ≤ 9e-8). */
const MEAN_GRAD = 3e-7;

interface RCase {
  shape: number[];
  axes?: number[];
  keepDims?: boolean;
  /** Added to every input value. */
  offset?: number;
}

const CASES: RCase[] = [
  { shape: [1] },
  { shape: [1, 1, 1], axes: [] },
  { shape: [1, 1, 1], axes: [1], keepDims: true },
  { shape: [7], axes: [0] },
  { shape: [5, 7, 3] },
  { shape: [5, 7, 3], axes: [0] },
  { shape: [5, 7, 3], axes: [1], keepDims: true },
  { shape: [5, 7, 3], axes: [-1] },
  { shape: [5, 7, 3], axes: [0, 2] },
  { shape: [5, 7, 3], axes: [2, 1], keepDims: true },
  { shape: [5, 7, 3], axes: [0, 1, 2], keepDims: true },
  { shape: [3, 1, 5], axes: [1], keepDims: true }, // reducing a size-1 axis only
  { shape: [17, 33, 5], axes: [0, 2] },
  { shape: [2, 3, 4, 5], axes: [1, 3] },
  { shape: [2, 3, 4, 5, 1, 3], axes: [0, 2, 4], keepDims: true },
  { shape: [65, 127], axes: [-2] },
  { shape: [127, 65, 33] }, // 272k elements into one
  { shape: [127, 65, 33], axes: [1] },
  { shape: [127, 65, 33], axes: [0, 2], keepDims: true }, // 4191 terms per output
  { shape: [70001, 2], axes: [1] }, // 70001 outputs: more workgroups than one grid dimension holds
];

function label(c: RCase): string {
  return `[${c.shape}] axes=${c.axes ? `[${c.axes}]` : 'omitted'}${c.keepDims ? ' keepDims' : ''}`;
}

describe.each([['sum'], ['mean']] as const)('%s', (name) => {
  CASES.forEach((c, i) => {
    it(label(c), async () => {
      const rng = makeRng(100 + i);
      const axes = c.axes ?? [];
      await checkOp(rt, {
        op: name,
        inputs: [randnT(c.shape, rng)],
        names: ['x'],
        rng,
        gpu: ([t]) => (name === 'sum' ? sum(t!, c.axes, c.keepDims) : mean(t!, c.axes, c.keepDims)),
        ref: ([r]) => (name === 'sum' ? R.sum(r!, axes, c.keepDims) : R.mean(r!, axes, c.keepDims)),
        vjp: ([r], g) => [name === 'sum' ? G.sumBackward(g, r!.shape, axes, c.keepDims) : G.meanBackward(g, r!.shape, axes, c.keepDims)],
        bound: SUM_FWD,
        gradBound: name === 'sum' ? SUM_GRAD : MEAN_GRAD,
      });
    });
  });

  it('rejects an axis out of range', () => {
    const x = upload(rt, randnT([2, 3], makeRng(1)));
    try {
      expect(() => (name === 'sum' ? sum(x, [2]) : mean(x, [2]))).toThrow(ReefError);
      expect(() => (name === 'sum' ? sum(x, [-3]) : mean(x, [-3]))).toThrow(/axis -3/);
    } finally {
      x.dispose();
    }
  });
});

/** Sums over leading or trailing axes have two kernels (tree; columns, the CPU default): both, on each shape. */
const LEADING: RCase[] = [
  { shape: [5, 7, 3], axes: [0] },
  { shape: [5, 7, 3], axes: [2] },
  { shape: [4, 12, 9, 10, 11], axes: [2, 3, 4], keepDims: true }, // an instance norm's spatial mean: 990 values each
  { shape: [3, 70001], axes: [1] }, // trailing, a last chunk of 113
  { shape: [65, 127], axes: [-2] },
  { shape: [127, 65, 33], axes: [0, 1], keepDims: true },
  { shape: [16384, 12], axes: [0] }, // a bias gradient: 64 chunks of 256 rows per column
  { shape: [70001, 3], axes: [0] }, // a last chunk of 113 rows
  // All axes: one column of 272k rows. Values of mean 1: the error is relative to |sum|, and a sum of
  // 272k standard normals (~500) would measure their cancellation rather than the kernel.
  { shape: [127, 65, 33], offset: 1 },
];
describe.each(REDUCE_VARIANTS.flatMap((v) => [['sum', v], ['mean', v]] as const))('%s over leading or trailing axes (%s kernel)', (name, variant) => {
  LEADING.forEach((c, i) => {
    it(label(c), async () => {
      const rng = makeRng(300 + i);
      const axes = c.axes ?? [];
      const x = randnT(c.shape, rng);
      for (let k = 0; k < x.data.length; k++) x.data[k]! += c.offset ?? 0;
      await checkOp(rt, {
        op: `${name} ${variant}`,
        inputs: [x],
        names: ['x'],
        rng,
        gpu: ([t]) => (name === 'sum' ? sum(t!, c.axes, c.keepDims, { variant }) : mean(t!, c.axes, c.keepDims, { variant })),
        ref: ([r]) => (name === 'sum' ? R.sum(r!, axes, c.keepDims) : R.mean(r!, axes, c.keepDims)),
        vjp: ([r], g) => [name === 'sum' ? G.sumBackward(g, r!.shape, axes, c.keepDims) : G.meanBackward(g, r!.shape, axes, c.keepDims)],
        bound: SUM_FWD,
        gradBound: name === 'sum' ? SUM_GRAD : MEAN_GRAD,
      });
    });
  });
});

describe('sumTo (the backward of broadcasting)', () => {
  const cases: [number[], number[]][] = [
    [[1], [1]],
    [[4, 3], [1]],
    [[2, 4, 3], [4, 3]],
    [[2, 4, 3], [4, 1]],
    [[5, 7, 3], [1, 7, 1]],
    [[127, 65, 33], [65, 1]],
  ];
  cases.forEach(([from, to], i) => {
    it(`[${from}] → [${to}]`, async () => {
      const rng = makeRng(150 + i);
      await checkOp(rt, {
        op: 'sumTo',
        inputs: [randnT(from, rng)],
        names: ['x'],
        rng,
        gpu: ([t]) => sumTo(t!, to),
        ref: ([r]) => R.sumTo(r!, to),
        vjp: ([r], g) => [R.broadcastTo(g, r!.shape)],
        bound: SUM_FWD,
        gradBound: SUM_GRAD,
      });
    });
  });

  it('rejects a shape it cannot be summed to', () => {
    const x = upload(rt, randnT([4, 3], makeRng(1)));
    try {
      expect(() => sumTo(x, [2, 4, 3])).toThrow(ReefError);
      expect(() => sumTo(x, [2])).toThrow(/cannot be summed/);
    } finally {
      x.dispose();
    }
  });
});

describe('memory', () => {
  it('forward only: inUse returns to its starting value', async () => {
    await expectNoLeak(rt, async () => {
      const x = upload(rt, randnT([5, 7, 3], makeRng(1)));
      const outs = [sum(x), sum(x, [1], true), mean(x, [0, 2]), mean(x)];
      await download(outs[0]!);
      for (const t of [x, ...outs]) t.dispose();
    });
  });

  // Fails: the backward closure in src/ops/reduce.ts calls reshape(g, keptShape) and never disposes
  // that handle, so the upstream gradient's buffer is never returned to the pool (256 B leaked here).
  it.each([['sum'], ['mean']] as const)('%s forward + backward: inUse returns to its starting value', async (name) => {
    await expectNoLeak(rt, async () => {
      const rng = makeRng(2);
      const x = upload(rt, randnT([5, 7, 3], rng), { requiresGrad: true });
      const live: Tensor[] = [x];
      try {
        const y = name === 'sum' ? sum(x, [1]) : mean(x, [1]);
        const g = upload(rt, randnT([5, 3], rng));
        live.push(y, g);
        backward(y, g);
        const ref = name === 'sum' ? G.sumBackward(arr([5, 3], await download(g)), [5, 7, 3], [1]) : G.meanBackward(arr([5, 3], await download(g)), [5, 7, 3], [1]);
        expectRel(name, 'dx', await download(x.grad!), ref, name === 'sum' ? SUM_GRAD : MEAN_GRAD);
      } finally {
        x.grad?.dispose();
        for (const t of live) t.dispose();
      }
    });
  });
});
