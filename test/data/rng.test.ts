/** The data PRNG: reference outputs, bitwise resume from a saved state, key derivation, ranges. */
import { describe, expect, it } from 'vitest';
import { Rng, type RngState } from '../../src/data/rng';

describe('Rng (xoshiro128**)', () => {
  it('matches the reference C implementation from state (1, 2, 3, 4)', () => {
    const r = Rng.fromState({ algorithm: 'xoshiro128**', s: [1, 2, 3, 4] });
    const got = Array.from({ length: 8 }, () => r.u32());
    expect(got).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849]);
    for (let i = 0; i < 992; i++) r.u32();
    expect(r.state().s).toEqual([2954884481, 294556968, 2598411021, 550772539]);
  });

  it('resumes bit for bit from a JSON round trip of its state, including a pending normal', () => {
    const a = Rng.fromKeys(42, 7);
    for (let i = 0; i < 13; i++) a.float();
    a.normal(); // leaves the second Box–Muller value pending
    const saved = JSON.parse(JSON.stringify(a.state())) as RngState;
    const b = Rng.fromState(saved);
    const seqA = [a.normal(), a.float(), a.u32(), a.int(1000), a.normal(), a.uniform(-3, 5)];
    const seqB = [b.normal(), b.float(), b.u32(), b.int(1000), b.normal(), b.uniform(-3, 5)];
    expect(seqB).toEqual(seqA);
    expect(a.clone().state()).toEqual(a.state());
  });

  it('derives distinct, reproducible streams from key lists', () => {
    const first = (keys: number[]) => Rng.fromKeys(...keys).u32();
    expect(first([1, 2])).toBe(first([1, 2]));
    const seen = new Set([first([1]), first([1, 2]), first([2, 1]), first([1, 2, 0]), first([2 ** 40]), first([0])]);
    expect(seen.size).toBe(6);
  });

  it('draws in range: float in [0, 1), int in [0, n), roughly uniform and normal moments', () => {
    const r = Rng.fromKeys(3);
    let sum = 0;
    const counts = new Array(7).fill(0);
    let m1 = 0;
    let m2 = 0;
    const N = 20000;
    for (let i = 0; i < N; i++) {
      const f = r.float();
      expect(f >= 0 && f < 1).toBe(true);
      sum += f;
      counts[r.int(7)]++;
      const z = r.normal();
      m1 += z;
      m2 += z * z;
    }
    expect(Math.abs(sum / N - 0.5)).toBeLessThan(0.01);
    for (const c of counts) expect(Math.abs(c / N - 1 / 7)).toBeLessThan(0.015);
    expect(Math.abs(m1 / N)).toBeLessThan(0.03);
    expect(Math.abs(m2 / N - 1)).toBeLessThan(0.05);
  });

  it('rejects bad seeds and states with a clear message', () => {
    expect(() => Rng.fromKeys()).toThrow(/at least one key/);
    expect(() => Rng.fromKeys(-1)).toThrow(/non-negative safe integers/);
    expect(() => Rng.fromKeys(1.5)).toThrow(/non-negative safe integers/);
    expect(() => Rng.fromState({ algorithm: 'xoshiro128**', s: [0, 0, 0, 0] })).toThrow(/all-zero/);
    expect(() => Rng.fromState({ algorithm: 'mt19937', s: [1, 2, 3, 4] } as unknown as RngState)).toThrow(/not an xoshiro128\*\* state/);
    expect(() => Rng.fromKeys(1).int(0)).toThrow(/Rng.int/);
  });
});
