/**
 * Helpers for testing GPU ops against the float64 CPU references in test/ref/.
 *
 * Inputs are drawn on the host from a seeded RNG and rounded to the storage precision (f32, or f16
 * for half tensors) BEFORE the reference sees them, so GPU and reference start from the same values
 * and any difference is the GPU's arithmetic (or a bug). Errors are `maxRelError` (max|a−e| / max|e|).
 * Every comparison is also recorded so each file can print a table of measured error vs bound.
 */
import { expect } from 'vitest';
import { type Arr, arr, maxRelError, type Rng, shapesEqual } from '../ref/array';
import { backward, tensor, tidy, type DType, type Runtime, type Tensor } from '../../src/index';

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

/** IEEE binary16 round-to-nearest-even of a number (independent of reef's own conversion). */
export function roundF16(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const ax = Math.abs(x);
  if (ax >= 65520) return Math.sign(x) * Infinity; // 65504 + half an ulp rounds up to inf
  // ulp of the binade of ax (subnormals share the ulp 2^-24)
  const e = Math.max(Math.floor(Math.log2(ax)), -14);
  let ulp = 2 ** (e - 10);
  // guard against log2 rounding at exact powers of two
  if (ax / ulp >= 2048) ulp *= 2;
  else if (e > -14 && ax / ulp < 1024) ulp /= 2;
  const q = ax / ulp;
  let r = Math.round(q);
  if (Math.abs(q - Math.trunc(q) - 0.5) === 0) r = Math.trunc(q) % 2 === 0 ? Math.trunc(q) : Math.trunc(q) + 1; // ties to even
  return Math.sign(x) * r * ulp;
}

export function roundTo(x: Arr, dtype: DType): Arr {
  const out = arr(x.shape);
  for (let i = 0; i < x.data.length; i++) out.data[i] = dtype === 'f16' ? roundF16(x.data[i]!) : Math.fround(x.data[i]!);
  return out;
}

/** i.i.d. N(0, std²) values, rounded to `dtype`. */
export function randnT(shape: readonly number[], rng: Rng, std = 1, dtype: DType = 'f32'): Arr {
  const x = arr(shape);
  for (let i = 0; i < x.data.length; i++) x.data[i] = rng.normal() * std;
  return roundTo(x, dtype);
}

/** i.i.d. uniform values in [lo, hi), rounded to `dtype`. */
export function uniformT(shape: readonly number[], rng: Rng, lo: number, hi: number, dtype: DType = 'f32'): Arr {
  const x = arr(shape);
  for (let i = 0; i < x.data.length; i++) x.data[i] = lo + (hi - lo) * rng.uniform();
  return roundTo(x, dtype);
}

/** Values bounded away from zero (|v| ∈ [lo, hi), random sign): safe divisors. */
export function awayFromZero(shape: readonly number[], rng: Rng, lo = 0.5, hi = 2): Arr {
  const x = arr(shape);
  for (let i = 0; i < x.data.length; i++) x.data[i] = (rng.uniform() < 0.5 ? -1 : 1) * (lo + (hi - lo) * rng.uniform());
  return roundTo(x, 'f32');
}

export function upload(rt: Runtime, x: Arr, opts: { requiresGrad?: boolean; dtype?: DType } = {}): Tensor {
  return tensor(rt, x.data, x.shape, opts);
}

export async function download(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.read());
}

// ---------------------------------------------------------------------------------------------
// Error bookkeeping
// ---------------------------------------------------------------------------------------------

interface Row {
  op: string;
  what: string;
  err: number;
  bound: number;
}
const rows = new Map<string, Row>();

/**
 * Asserts max|a−e|/max|e| ≤ bound (and equal lengths), records the measured error, returns it.
 * `expected` may be an Arr (its shape is not checked here; check shapes separately).
 */
export function expectRel(op: string, what: string, actual: ArrayLike<number>, expected: Arr | ArrayLike<number>, bound: number): number {
  const exp = 'data' in expected ? expected.data : expected;
  expect(actual.length, `${op} ${what}: length`).toBe(exp.length);
  const err = maxRelError(actual, exp);
  const key = `${op}\u0000${what}`;
  const prev = rows.get(key);
  if (!prev || err > prev.err || bound > prev.bound) rows.set(key, { op, what, err: Math.max(err, prev?.err ?? 0), bound: Math.max(bound, prev?.bound ?? 0) });
  if (process.env.REEF_TEST_VERBOSE) console.log(`[err] ${op} ${what} ${err.toExponential(3)} bound ${bound.toExponential(2)} ratio ${(err / bound).toFixed(3)}`);
  expect(err, `${op} ${what}: max relative error ${err.toExponential(3)} exceeds bound ${bound.toExponential(1)}`).toBeLessThanOrEqual(bound);
  return err;
}

/** Prints (and clears) the table of worst measured errors per (op, quantity). */
export function printErrorTable(title: string): void {
  if (rows.size === 0) return;
  const lines = [...rows.values()].map((r) => `  ${r.op.padEnd(34)} ${r.what.padEnd(12)} ${r.err.toExponential(2).padStart(10)}  ≤ ${r.bound.toExponential(0)}`);
  console.log(`${title}: max relative error (worst case over inputs) vs bound\n${lines.join('\n')}`);
  rows.clear();
}

// ---------------------------------------------------------------------------------------------
// One op, forward and backward
// ---------------------------------------------------------------------------------------------

export interface OpCase {
  /** Name for the report, e.g. 'matmul[tiled]'. */
  op: string;
  /** Host inputs (already rounded to `dtype`). */
  inputs: Arr[];
  /** Names of the inputs for messages, e.g. ['a', 'b', 'bias']. */
  names?: string[];
  /** Which inputs get requiresGrad (default: all, when `vjp` is given). */
  grad?: boolean[];
  /** Element type of the inputs (default f32). */
  dtype?: DType;
  /** Element type of the output and of its upstream gradient (default: `dtype`). */
  outDtype?: DType;
  /** The GPU computation; intermediates are disposed by a tidy scope around it. */
  gpu: (xs: Tensor[]) => Tensor;
  /** float64 reference of the forward pass. */
  ref: (xs: Arr[]) => Arr;
  /** float64 reference VJP: gradients per input (undefined where not checked). */
  vjp?: (xs: Arr[], g: Arr) => (Arr | undefined)[];
  bound: number;
  /** Bound for the gradients: one for all, or per input. */
  gradBound?: number | number[];
  rng: Rng;
  /** Scale of the random upstream gradient (default 1). */
  gradStd?: number;
}

/** Runs the op on the GPU, compares forward and (with `vjp`) every input gradient; disposes all. */
export async function checkOp(rt: Runtime, c: OpCase): Promise<void> {
  const dtype = c.dtype ?? 'f32';
  const outDtype = c.outDtype ?? dtype;
  const names = c.names ?? c.inputs.map((_, i) => `x${i}`);
  const wantGrad = c.inputs.map((_, i) => !!c.vjp && (c.grad?.[i] ?? true));
  const ts = c.inputs.map((x, i) => upload(rt, x, { requiresGrad: wantGrad[i]!, dtype }));
  const live: Tensor[] = [...ts];
  try {
    const out = tidy(() => c.gpu(ts));
    live.push(out);
    const expected = c.ref(c.inputs);
    expect([...out.shape], `${c.op}: output shape`).toEqual(expected.shape);
    expect(out.dtype).toBe(outDtype);
    expectRel(c.op, 'forward', await download(out), expected, c.bound);
    if (!c.vjp) return;
    const g = randnT(expected.shape, c.rng, c.gradStd ?? 1, outDtype);
    const gt = upload(rt, g, { dtype: outDtype });
    live.push(gt);
    backward(out, gt);
    const refs = c.vjp(c.inputs, g);
    for (let i = 0; i < ts.length; i++) {
      if (!wantGrad[i]) continue;
      const ref = refs[i];
      if (!ref) continue;
      const t = ts[i]!;
      const grad = t.grad;
      expect(grad, `${c.op}: d${names[i]} missing`).not.toBeNull();
      expect(grad!.dtype, `${c.op}: d${names[i]} element type`).toBe(t.dtype);
      expect([...grad!.shape], `${c.op}: d${names[i]} shape`).toEqual(ref.shape);
      expect(shapesEqual(ref.shape, t.shape)).toBe(true);
      const bound = Array.isArray(c.gradBound) ? c.gradBound[i]! : (c.gradBound ?? c.bound);
      expectRel(c.op, `d${names[i]}`, await download(grad!), ref, bound);
    }
  } finally {
    for (const t of ts) {
      t.grad?.dispose();
      t.grad = null;
    }
    for (const t of live) t.dispose();
  }
}

/** Runs `body`, then asserts that `rt.memory().inUse` is back to where it started. */
export async function expectNoLeak(rt: Runtime, body: () => Promise<void>): Promise<void> {
  const before = rt.memory().inUse;
  await body();
  await rt.sync();
  expect(rt.memory().inUse, 'bytes held by tensors after disposing everything').toBe(before);
}

/** Runs `loss()` and its backward twice; the gradient of `input` must be bitwise the same. */
export async function expectDeterministicGrad(input: Tensor, loss: () => Tensor): Promise<void> {
  const run = async () => {
    const l = loss();
    backward(l);
    l.dispose();
    const g = await input.grad!.read();
    input.grad!.dispose();
    input.grad = null;
    return g;
  };
  const a = await run();
  const b = await run();
  expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer)), 'two backward passes bitwise equal').toBe(true);
}
