/** The teacher EMA kernel against float64, its exact end points, and tensors bound in pieces. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../../src/gpu/runtime';
import { tensor, type Tensor } from '../../src/index';
import { emaUpdate } from '../../src/train/ema';
import { makeRng } from '../ref/array';
import { expectRel, printErrorTable, randnT } from '../support/compare';
import { testRuntime } from '../support/runtime';

let rt: Runtime;
beforeAll(async () => {
  rt = await testRuntime();
});
afterAll(() => printErrorTable('teacher EMA'));

const SHAPES = [[1], [257], [64, 33], [3, 5, 7, 11], [70_001]];
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

function setup(r: Runtime, seed: number) {
  const rng = makeRng(seed);
  const t = SHAPES.map((s) => randnT(s, rng));
  const s = SHAPES.map((sh) => randnT(sh, rng));
  return { t, s, tt: t.map((x) => tensor(r, x.data, x.shape)), st: s.map((x) => tensor(r, x.data, x.shape)) };
}

describe('emaUpdate', () => {
  it('θt ← m·θt + (1−m)·θs matches float64 over several steps (m = 0.996, 0.9, 0.5)', async () => {
    const { t, s, tt, st } = setup(rt, 11);
    const ms = [0.996, 0.9, 0.5, 0.99995];
    const ref = t.map((x) => Float64Array.from(x.data));
    for (const m of ms) {
      emaUpdate(tt, st, m);
      // The reference rounds to f32 after each step, as the teacher is stored in f32.
      ref.forEach((r, i) => r.forEach((v, j) => (r[j] = Math.fround(m * v + (1 - m) * s[i]!.data[j]!))));
    }
    for (let i = 0; i < SHAPES.length; i++) expectRel('ema', `[${SHAPES[i]}]`, await tt[i]!.read(), ref[i]!, 1e-6);
    // One step in float64 without rounding, for the per-step error.
    const { t: t1, s: s1, tt: tt1, st: st1 } = setup(rt, 12);
    emaUpdate(tt1, st1, 0.996);
    for (let i = 0; i < SHAPES.length; i++) {
      const want = t1[i]!.data.map((v, j) => 0.996 * v + 0.004 * s1[i]!.data[j]!);
      expectRel('ema', 'one step', await tt1[i]!.read(), want, 1e-6);
    }
    for (const x of [...tt, ...st, ...tt1, ...st1]) x.dispose();
  });

  it('m = 1 leaves the teacher bitwise unchanged; m = 0 copies the student exactly', async () => {
    const { t, s, tt, st } = setup(rt, 13);
    emaUpdate(tt, st, 1);
    for (let i = 0; i < SHAPES.length; i++) expect(bits(await tt[i]!.read())).toEqual(bits(Float32Array.from(t[i]!.data)));
    emaUpdate(tt, st, 0);
    for (let i = 0; i < SHAPES.length; i++) expect(bits(await tt[i]!.read())).toEqual(bits(Float32Array.from(s[i]!.data)));
    for (const x of [...tt, ...st]) x.dispose();
  });

  it('tensors over the binding limit give bitwise the same result', async () => {
    const small = await Runtime.create({ maxStorageBufferBindingSize: 16 * 1024, maxWorkgroupsPerDimension: 5, maxBatch: 64 });
    try {
      const a = setup(rt, 14);
      const b = setup(small, 14);
      emaUpdate(a.tt, a.st, 0.996);
      emaUpdate(b.tt, b.st, 0.996);
      for (let i = 0; i < SHAPES.length; i++) expect(bits(await b.tt[i]!.read())).toEqual(bits(await a.tt[i]!.read()));
      for (const x of [...a.tt, ...a.st, ...b.tt, ...b.st]) x.dispose();
    } finally {
      small.dispose();
    }
  });

  it('rejects mismatched lists, shapes, element types and momenta', () => {
    const a = tensor(rt, [1, 2], [2]);
    const b = tensor(rt, [1, 2, 3], [3]);
    const h = rt.caps.f16 ? tensor(rt, [1, 2], [2], { dtype: 'f16' }) : null;
    expect(() => emaUpdate([a], [], 0.9)).toThrow(/1 teacher tensors but 0/);
    expect(() => emaUpdate([a], [b], 0.9)).toThrow(/shape/);
    expect(() => emaUpdate([a], [a], 0.9)).toThrow(/shares/);
    expect(() => emaUpdate([a], [a], 1.5)).toThrow(/momentum/);
    if (h) expect(() => emaUpdate([a], [h], 0.9)).toThrow(/f32/);
    for (const x of [a, b, h] as (Tensor | null)[]) x?.dispose();
  });
});
