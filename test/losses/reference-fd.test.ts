/**
 * The float64 references of test/ref/losses.ts against finite differences: every loss's VJP per
 * input, on sampled coordinates (checkVjp) and along a random direction per tensor, so the GPU
 * tests compare with gradients that are themselves right.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { type Arr, arr, clone, makeRng, randn, type Rng } from '../ref/array';
import { checkVjp } from '../ref/finite-diff';
import * as L from '../ref/losses';
import { softmax } from '../ref/ops';

const TOL = 1e-6;
const worst = new Map<string, number>();
afterAll(() => console.log(`reference VJPs vs finite differences (worst relative error):\n${[...worst].map(([k, v]) => `  ${k.padEnd(36)} ${v.toExponential(2)}`).join('\n')}`));

function record(name: string, errs: number[], tol = TOL): void {
  worst.set(name, Math.max(worst.get(name) ?? 0, ...errs));
  for (const e of errs) expect(e, name).toBeLessThan(tol);
}

/**
 * Directional check: ⟨∇L, u⟩ against (L(x + h·u) − L(x − h·u)) / 2h for a random unit u per input
 * (all coordinates at once, complementing checkVjp's sampled coordinates). L = ⟨gOut, f⟩.
 */
function directional(f: (xs: Arr[]) => Arr, inputs: Arr[], vjp: (xs: Arr[], g: Arr) => Arr[], rng: Rng, h = 1e-6): number[] {
  const out = f(inputs);
  const g = randn(out.shape, rng);
  const grads = vjp(inputs, g);
  const L = (xs: Arr[]) => f(xs).data.reduce((s, v, i) => s + v * g.data[i]!, 0);
  return inputs.map((x, which) => {
    const u = randn(x.shape, rng);
    const nrm = Math.sqrt(u.data.reduce((s, v) => s + v * v, 0));
    for (let i = 0; i < u.data.length; i++) u.data[i] = u.data[i]! / nrm;
    const at = (sgn: number) => {
      const xs = inputs.map(clone);
      for (let i = 0; i < u.data.length; i++) xs[which]!.data[i] = xs[which]!.data[i]! + sgn * h * u.data[i]!;
      return L(xs);
    };
    const numeric = (at(1) - at(-1)) / (2 * h);
    const analytic = grads[which]!.data.reduce((s, v, i) => s + v * u.data[i]!, 0);
    return Math.abs(numeric - analytic) / Math.max(Math.abs(numeric), Math.abs(analytic), 1e-30);
  });
}

function both(name: string, f: (xs: Arr[]) => Arr, inputs: Arr[], vjp: (xs: Arr[], g: Arr) => Arr[], rng: Rng, tol = TOL): void {
  record(`${name} (coordinates)`, checkVjp({ f, inputs, vjp, rng, maxElems: 40 }), tol);
  record(`${name} (direction)`, directional(f, inputs, vjp, rng), tol);
}

/** Random probability rows. */
function probs(rows: number, K: number, rng: Rng): Arr {
  return softmax(randn([rows, K], rng, 2));
}

describe('reference VJPs', () => {
  it('l2Normalize (eps 1e-12, and a clamped row)', () => {
    const rng = makeRng(1);
    both('l2Normalize', ([x]) => L.l2Normalize(x!, 1e-12), [randn([4, 7], rng)], ([x], g) => [L.l2NormalizeBackward(x!, 1e-12, g)], rng);
    const x = randn([3, 5], rng);
    for (let c = 0; c < 5; c++) x.data[5 + c] = x.data[5 + c]! * 1e-3; // row 1 below eps 0.01
    both('l2Normalize clamped', ([t]) => L.l2Normalize(t!, 0.01), [x], ([t], g) => [L.l2NormalizeBackward(t!, 0.01, g)], rng);
  });

  it('DINO loss (2 globals + 3 locals)', () => {
    const rng = makeRng(2);
    const B = 3;
    const K = 6;
    const teacher = probs(2 * B, K, rng);
    both('dinoLoss', ([s]) => L.dinoLoss(s!, teacher, 2, 0.1), [randn([5 * B, K], rng, 0.3)], ([s], g) => [L.dinoLossBackward(s!, teacher, 2, 0.1, g.data[0]!)], rng);
  });

  it('iBOT loss (an image without masked tokens)', () => {
    const rng = makeRng(3);
    const image = [0, 0, 0, 2, 2, 3];
    const teacher = probs(6, 5, rng);
    both('ibotLoss', ([s]) => L.ibotLoss(s!, teacher, image, 4, 0.1), [randn([6, 5], rng, 0.3)], ([s], g) => [L.ibotLossBackward(s!, teacher, image, 4, 0.1, g.data[0]!)], rng);
  });

  it('KoLeo (B = 2, B = 5, two groups of 4), neighbours held fixed', () => {
    const rng = makeRng(4);
    for (const [R, group] of [[2, 2], [5, 5], [8, 4]] as const) {
      const x = randn([R, 6], rng);
      // The neighbour is a constant of the gradient: fix it at x so perturbations cannot flip it.
      const nn = L.koleoNeighbours(L.l2Normalize(x, 1e-8), group);
      both(`koleo R=${R} group=${group}`, ([t]) => L.koleoLoss(t!, group, 1e-8, nn), [x], ([t], g) => [L.koleoLossBackward(t!, group, 1e-8, g.data[0]!, nn)], rng);
    }
  });

  it('SigReg w.r.t. Z', () => {
    const rng = makeRng(5);
    const A = randn([4, 7], rng);
    const An = L.l2Normalize({ data: transpose(A).data, shape: [7, 4] }, 0);
    const slices = transpose(An);
    both('sigreg', ([z]) => L.sigreg(z!, slices), [randn([9, 4], rng)], ([z], g) => [L.sigregBackwardZ(z!, slices, g.data[0]!)], rng);
  });

  it('DINO head: x, MLP weights and biases, weight-normed v', () => {
    const rng = makeRng(6);
    const dims = [5, 7, 7, 4];
    const weights = [0, 1, 2].map((i) => randn([dims[i + 1]!, dims[i]!], rng, 0.5));
    const biases = [0, 1, 2].map((i) => randn([dims[i + 1]!], rng, 0.1));
    const v = randn([6, 4], rng);
    const x = randn([3, 5], rng);
    const unpack = (xs: Arr[]) => ({ x: xs[0]!, p: { weights: [xs[1]!, xs[3]!, xs[5]!], biases: [xs[2]!, xs[4]!, xs[6]!], v: xs[7]! } });
    both(
      'dinoHead',
      (xs) => {
        const { x: xx, p } = unpack(xs);
        return L.dinoHead(xx, p);
      },
      [x, weights[0]!, biases[0]!, weights[1]!, biases[1]!, weights[2]!, biases[2]!, v],
      (xs, g) => {
        const { x: xx, p } = unpack(xs);
        const r = L.dinoHeadBackward(xx, p, g);
        return [r.dx, r.dweights[0]!, r.dbiases[0]!, r.dweights[1]!, r.dbiases[1]!, r.dweights[2]!, r.dbiases[2]!, r.dv];
      },
      rng,
    );
  });
});

describe('reference targets', () => {
  it('Sinkhorn: rows sum to 1; prototype masses approach B/K', () => {
    const rng = makeRng(7);
    const q = L.sinkhorn(randn([5, 8], rng, 0.5), 0.05, 3);
    for (let b = 0; b < 5; b++) expect(q.data.subarray(b * 8, b * 8 + 8).reduce((s, v) => s + v, 0)).toBeCloseTo(1, 12);
    const many = L.sinkhorn(randn([5, 8], rng, 0.5), 0.5, 200);
    for (let k = 0; k < 8; k++) {
      let s = 0;
      for (let b = 0; b < 5; b++) s += many.data[b * 8 + k]!;
      expect(s).toBeCloseTo(5 / 8, 8);
    }
  });
});

function transpose(a: Arr): Arr {
  const [r, c] = a.shape as [number, number];
  const out = arr([c, r]);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out.data[j * r + i] = a.data[i * c + j]!;
  return out;
}
