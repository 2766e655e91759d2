/**
 * A small composite on the GPU, checked two ways:
 *   loss = mean(gelu(layerNorm(matmul(x, W, {transB: true, bias: b}), g, beta)))
 * 1. autograd gradients vs central finite differences of the GPU loss itself (f32, so a loose
 *    bound: h = 1e-2 on well-conditioned inputs, truncation O(h²) plus f32 noise in the loss);
 * 2. autograd gradients vs the float64 chain of reference VJPs (tight bound).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { testRuntime } from '../support/runtime';
import { download, expectNoLeak, expectRel, printErrorTable, randnT, upload } from '../support/compare';
import { type Arr, arr, makeRng, maxRelError } from '../ref/array';
import * as R from '../ref/ops';
import * as G from '../ref/grads';
import { backward, gelu, layerNorm, matmul, mean, noGrad, type Runtime, type Tensor } from '../../src/index';

const rt: Runtime = await testRuntime();
afterAll(() => printErrorTable('composite'));

const N = 6;
const DIN = 8;
const DOUT = 7;
const H = 1e-2;
/** FD vs autograd, relative to the largest |gradient| among the checked elements. */
const FD_BOUND = 2e-2;
/** autograd vs the float64 reference chain. */
const CHAIN_BOUND = 3e-6;

function inputs(seed: number): Arr[] {
  const rng = makeRng(seed);
  const g = randnT([DOUT], rng, 0.3);
  for (let i = 0; i < DOUT; i++) g.data[i] = Math.fround(1 + g.data[i]!); // gains near 1
  return [randnT([N, DIN], rng), randnT([DOUT, DIN], rng, 0.5), randnT([DOUT], rng, 0.5), g, randnT([DOUT], rng, 0.3)];
}

/** The composite on GPU tensors [x, W, b, g, beta]; returns the loss and every intermediate. */
function forward([x, w, b, g, beta]: Tensor[]): { loss: Tensor; temps: Tensor[] } {
  const h = matmul(x!, w!, { transB: true, bias: b! });
  const n = layerNorm(h, g!, beta!, 1e-5);
  const a = gelu(n);
  const loss = mean(a);
  return { loss, temps: [h, n, a] };
}

async function lossAt(values: Arr[]): Promise<number> {
  const ts = values.map((v) => upload(rt, v));
  try {
    return await noGrad(async () => {
      const { loss, temps } = forward(ts);
      const v = await loss.item();
      for (const t of [loss, ...temps]) t.dispose();
      return v;
    });
  } finally {
    for (const t of ts) t.dispose();
  }
}

/** Autograd gradients of every input. */
async function autograd(values: Arr[]): Promise<Float64Array[]> {
  const ts = values.map((v) => upload(rt, v, { requiresGrad: true }));
  const { loss, temps } = forward(ts);
  try {
    backward(loss);
    return await Promise.all(ts.map((t) => download(t.grad!)));
  } finally {
    for (const t of ts) t.grad?.dispose();
    for (const t of [...ts, loss, ...temps]) t.dispose();
  }
}

describe('composite: mean(gelu(layerNorm(matmul(x, Wᵀ) + b, g, beta)))', () => {
  it('autograd matches central finite differences of the GPU loss (x and W)', async () => {
    const vals = inputs(1);
    const ad = await autograd(vals);
    const rng = makeRng(2);
    for (const [which, name] of [[0, 'x'], [1, 'W']] as const) {
      const size = vals[which]!.data.length;
      const picks = new Set<number>();
      while (picks.size < 6) picks.add(Math.floor(rng.uniform() * size));
      const fd: number[] = [];
      const an: number[] = [];
      for (const i of picks) {
        const plus = vals.map((v) => arr(v.shape, v.data));
        const minus = vals.map((v) => arr(v.shape, v.data));
        const x0 = vals[which]!.data[i]!;
        const xp = Math.fround(x0 + H);
        const xm = Math.fround(x0 - H);
        plus[which]!.data[i] = xp;
        minus[which]!.data[i] = xm;
        fd.push(((await lossAt(plus)) - (await lossAt(minus))) / (xp - xm));
        an.push(ad[which]![i]!);
      }
      const err = expectRel('composite FD', `d${name}`, an, fd, FD_BOUND);
      expect(Number.isFinite(err)).toBe(true);
      // the check can fail: a gradient scaled by 1.1 would be caught
      expect(maxRelError(an.map((v) => 1.1 * v), fd)).toBeGreaterThan(FD_BOUND);
    }
  });

  it('autograd matches the float64 chain of reference VJPs (all five inputs)', async () => {
    const vals = inputs(3);
    const [x, w, b, g, beta] = vals as [Arr, Arr, Arr, Arr, Arr];
    const ad = await autograd(vals);
    const h = R.matmul(x, w, { transB: true, bias: b });
    const n = R.layerNorm(h, g, beta, 1e-5);
    const a = R.gelu(n);
    const gLoss = arr(a.shape).data.fill(1 / a.data.length);
    const da = arr(a.shape, gLoss);
    const dn = G.geluBackward(n, da);
    const ln = G.layerNormBackward(h, g, beta, dn, 1e-5);
    const mm = G.matmulBackward(x, w, ln.dx, { transB: true, bias: b });
    const refs = [mm.da, mm.db, mm.dbias!, ln.dw!, ln.db!];
    ['x', 'W', 'b', 'g', 'beta'].forEach((name, i) => expectRel('composite chain', `d${name}`, ad[i]!, refs[i]!, CHAIN_BOUND));
  });

  it('inUse returns to its starting value after forward + backward', async () => {
    await expectNoLeak(rt, async () => {
      await autograd(inputs(4));
      await lossAt(inputs(5));
    });
  });
});
