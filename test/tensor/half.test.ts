/**
 * Half floats (src/tensor/half.ts): binary32 <-> binary16 conversion on the host, checked against an
 * independent reference (nearest of all finite f16 values, ties to even), and f16 tensors on the GPU.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime';
import { f16BitsToF32, f32ToF16Bits, fromF16Array, toF16Array } from '../../src/tensor/half';
import { makeRng, tensor } from '../../src/tensor/create';
import { scale } from '../../src/ops/pointwise';
import { testRuntime } from '../support/runtime';

const hex = (h: number) => `0x${h.toString(16).padStart(4, '0')}`;

/** Value of a finite f16 bit pattern, computed independently of half.ts. */
function f16Value(h: number): number {
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  const mag = e === 0 ? m / 1024 / 16384 : (1 + m / 1024) * Math.pow(2, e - 15);
  return h & 0x8000 ? -mag : mag;
}

const POSITIVE = Array.from({ length: 0x7c00 }, (_, h) => f16Value(h)); // 0 .. 65504, increasing

/** binary16 round-to-nearest-even of any double, by search over the f16 values. */
function refF16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00; // halfway between 65504 and 2^16, or above: inf
  let lo = 0;
  let hi = 0x7bff;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (POSITIVE[mid]! <= a) lo = mid;
    else hi = mid - 1;
  }
  if (lo === 0x7bff) return sign | lo; // in [65504, 65520)
  const below = POSITIVE[lo]!;
  const above = POSITIVE[lo + 1]!;
  const h = a - below < above - a ? lo : a - below > above - a ? lo + 1 : lo % 2 === 0 ? lo : lo + 1;
  return sign | h;
}

describe('f32ToF16Bits / f16BitsToF32', () => {
  it('converts exactly representable values both ways', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.5, 0x3800],
      [1.5, 0x3e00],
      [65504, 0x7bff],
      [-65504, 0xfbff],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [-(2 ** -24), 0x8001],
      [1023 * 2 ** -24, 0x03ff], // largest subnormal
      [1 + 2 ** -10, 0x3c01],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
    ];
    for (const [x, h] of cases) {
      expect(hex(f32ToF16Bits(x)), `bits of ${x}`).toBe(hex(h));
      expect(Object.is(f16BitsToF32(h), x), `value of ${hex(h)}`).toBe(true);
    }
  });

  it('round-trips every one of the 65536 bit patterns (NaNs stay NaN)', () => {
    const bad: string[] = [];
    for (let h = 0; h < 0x10000; h++) {
      const v = f16BitsToF32(h);
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN) {
        if (!Number.isNaN(v)) bad.push(`${hex(h)} -> ${v}`);
        const back = f32ToF16Bits(v);
        if ((back & 0x7c00) !== 0x7c00 || (back & 0x3ff) === 0) bad.push(`NaN ${hex(h)} -> ${hex(back)}`);
        continue;
      }
      if (v !== f16Value(h) && !(Math.abs(v) === Infinity && (h & 0x7fff) === 0x7c00)) bad.push(`${hex(h)} -> ${v}, expected ${f16Value(h)}`);
      if (f32ToF16Bits(v) !== h) bad.push(`${hex(h)} -> ${v} -> ${hex(f32ToF16Bits(v))}`);
    }
    expect(bad.slice(0, 10)).toEqual([]);
  });

  it('rounds to nearest, ties to even', () => {
    const u = 2 ** -10; // ulp at 1
    expect(hex(f32ToF16Bits(1 + u / 2))).toBe('0x3c00'); // tie -> even (down)
    expect(hex(f32ToF16Bits(1 + (3 * u) / 2))).toBe('0x3c02'); // tie -> even (up)
    expect(hex(f32ToF16Bits(1 + u / 2 + 2 ** -20))).toBe('0x3c01'); // just above the tie
    expect(hex(f32ToF16Bits(1 + u / 2 - 2 ** -20))).toBe('0x3c00'); // just below
    expect(hex(f32ToF16Bits(-(1 + (3 * u) / 2)))).toBe('0xbc02');
    // carry out of the mantissa into the exponent
    expect(hex(f32ToF16Bits(2 - u / 4))).toBe('0x4000');
    expect(hex(f32ToF16Bits(0.1))).toBe('0x2e66');
    expect(hex(f32ToF16Bits(1 / 3))).toBe('0x3555');
  });

  it('handles subnormals, underflow and the subnormal/normal boundary', () => {
    const s = 2 ** -24; // smallest subnormal
    expect(hex(f32ToF16Bits(s / 2))).toBe('0x0000'); // tie -> even zero
    expect(hex(f32ToF16Bits(-s / 2))).toBe('0x8000');
    expect(hex(f32ToF16Bits((s / 2) * (1 + 2 ** -10)))).toBe('0x0001');
    expect(hex(f32ToF16Bits(s / 4))).toBe('0x0000');
    expect(hex(f32ToF16Bits(1.5 * s))).toBe('0x0002'); // tie between 1 and 2 -> 2
    expect(hex(f32ToF16Bits(2.5 * s))).toBe('0x0002'); // tie between 2 and 3 -> 2
    expect(hex(f32ToF16Bits(1023.5 * s))).toBe('0x0400'); // rounds up into the smallest normal
    expect(hex(f32ToF16Bits(1e-30))).toBe('0x0000');
    expect(hex(f32ToF16Bits(-1e-30))).toBe('0x8000');
    expect(hex(f32ToF16Bits(1e-45))).toBe('0x0000'); // an f32 subnormal
    expect(f16BitsToF32(0x0200)).toBe(2 ** -15);
  });

  it('overflows to infinity from 65520 up (65504 + half an ulp ties to even = inf)', () => {
    expect(hex(f32ToF16Bits(65519))).toBe('0x7bff');
    expect(hex(f32ToF16Bits(65520))).toBe('0x7c00');
    expect(hex(f32ToF16Bits(-65520))).toBe('0xfc00');
    expect(hex(f32ToF16Bits(1e6))).toBe('0x7c00');
    expect(hex(f32ToF16Bits(3.4e38))).toBe('0x7c00');
    expect(hex(f32ToF16Bits(-1e10))).toBe('0xfc00');
  });

  it('maps NaN to a NaN pattern', () => {
    const h = f32ToF16Bits(NaN);
    expect(h & 0x7c00).toBe(0x7c00);
    expect(h & 0x3ff).not.toBe(0);
    expect(Number.isNaN(f16BitsToF32(0x7e00))).toBe(true);
    expect(Number.isNaN(f16BitsToF32(0xfc01))).toBe(true);
  });

  it('agrees with the reference on random f32 values of every magnitude', () => {
    const rng = makeRng(7);
    const bad: string[] = [];
    for (let i = 0; i < 50_000; i++) {
      const x = Math.fround((rng() < 0.5 ? -1 : 1) * rng() * 2 ** Math.floor(rng() * 50 - 30));
      const got = f32ToF16Bits(x);
      const want = refF16Bits(x);
      if (got !== want) bad.push(`${x}: ${hex(got)} != ${hex(want)}`);
    }
    // every f32 tie point and its neighbours in one binade
    for (let m = 0; m < 1024; m++) {
      const mid = 1 + (m + 0.5) / 1024;
      for (const x of [mid, Math.fround(mid * (1 + 2 ** -23)), Math.fround(mid * (1 - 2 ** -23))]) {
        if (f32ToF16Bits(x) !== refF16Bits(x)) bad.push(`${x}: ${hex(f32ToF16Bits(x))} != ${hex(refF16Bits(x))}`);
      }
    }
    expect(bad.slice(0, 10)).toEqual([]);
  });

  it('toF16Array rounds double-precision input once, not twice (via f32)', () => {
    // tensor(rt, data, shape, { dtype: 'f16' }) converts `data` (doubles) with toF16Array, which
    // rounds to f32 first. 1 + 2^-11 + 2^-40 lies above the halfway point between f16 1 and
    // 1 + 2^-10, so it must round up; rounded to f32 first it becomes exactly the halfway point and
    // then ties to even, down to 1.
    const x = 1 + 2 ** -11 + 2 ** -40;
    expect(hex(refF16Bits(x))).toBe('0x3c01');
    expect(hex(toF16Array([x])[0]!)).toBe('0x3c01');
  });

  it('toF16Array and fromF16Array convert arrays', () => {
    const src = [0, 1, -2.5, 65504, 1e9];
    const bits = toF16Array(src);
    expect(bits).toBeInstanceOf(Uint16Array);
    expect(Array.from(bits, hex)).toEqual(['0x0000', '0x3c00', '0xc100', '0x7bff', '0x7c00']);
    expect(Array.from(fromF16Array(bits))).toEqual([0, 1, -2.5, 65504, Infinity]);
  });
});

describe('f16 tensors on the GPU', () => {
  let rt: Runtime;
  beforeAll(async () => {
    rt = await testRuntime();
    if (!rt.caps.f16) console.log(`skipping f16 tensor tests: adapter ${rt.describe()} has no shader-f16`);
  });

  it('upload and readback round-trip f16 values (rounded on upload)', async (ctx) => {
    if (!rt.caps.f16) return ctx.skip();
    const data = [0, -0, 1, -1.5, 65504, -65504, 2 ** -24, 1023 * 2 ** -24, 0.1, 1 / 3, 70000, -Infinity, 7];
    const t = tensor(rt, data, [data.length], { dtype: 'f16' });
    expect(t.dtype).toBe('f16');
    expect(t.byteSize).toBe(2 * data.length); // 26 bytes: an odd number of 4-byte words
    const back = Array.from(await t.read());
    const f16Any = (h: number) => ((h & 0x7fff) === 0x7c00 ? (h & 0x8000 ? -Infinity : Infinity) : f16Value(h));
    expect(back).toEqual(data.map((x) => f16Any(refF16Bits(x))));
    expect(back.slice(-3)).toEqual([Infinity, -Infinity, 7]);
    expect(Object.is(back[1], -0)).toBe(true);
    t.dispose();
  });

  it('f16 tensors are refused on an adapter without shader-f16, before anything is allocated', () => {
    const noF16 = { ...rt, caps: { ...rt.caps, f16: false }, pool: rt.pool } as unknown as Runtime;
    const before = rt.memory().inUse;
    expect(() => tensor(noF16, [1, 2], [2], { dtype: 'f16' })).toThrow(/no shader-f16/);
    expect(rt.memory().inUse).toBe(before);
  });

  it('a kernel on f16 data computes in f16', async (ctx) => {
    if (!rt.caps.f16) return ctx.skip();
    const data = Array.from({ length: 1000 }, (_, i) => (i - 500) / 8);
    const t = tensor(rt, data, [1000], { dtype: 'f16' });
    const y = scale(t, 2, 1);
    expect(y.dtype).toBe('f16');
    const out = await y.read();
    const bad = data.map((x, i) => [x, out[i]!]).filter(([x, o]) => o !== 2 * x! + 1);
    expect(bad.slice(0, 5)).toEqual([]);
    // 1000 f16 elements take 2000 bytes on the GPU
    expect(y.byteSize).toBe(2000);
    t.dispose();
    y.dispose();
  });
});
