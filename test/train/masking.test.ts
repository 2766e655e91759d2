/**
 * iBOT block masks in 3D: how many patches they mask (never above the target or half the grid, close
 * to the target on average), that blocks are cuboids, which crops get masks and with which ratios,
 * the max-pool to a coarser stage grid against a brute-force pool, and replay from a saved RNG state.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/data/rng';
import { blockMask, ibotMasks, poolMask, type Grid3 } from '../../src/train/masking';

const count = (m: Uint8Array) => m.reduce((s, v) => s + v, 0);

describe('iBOT 3D block masks', () => {
  it('masks at most the target and at most half the grid, and about the target on average', () => {
    const rng = Rng.fromKeys(1);
    const grid: Grid3 = [16, 16, 16];
    const n = 16 ** 3;
    for (const ratio of [0.1, 0.3, 0.5, 0.7]) {
      const target = Math.floor(n * ratio);
      let sum = 0;
      for (let i = 0; i < 40; i++) {
        const c = count(blockMask(grid, target, rng));
        expect(c).toBeLessThanOrEqual(Math.min(target, n / 2));
        sum += c / Math.min(target, n / 2);
      }
      expect(sum / 40, `mean achieved / target at ratio ${ratio}`).toBeGreaterThan(0.85);
    }
  });

  it('a single block is a cuboid', () => {
    const rng = Rng.fromKeys(2);
    const grid: Grid3 = [12, 10, 14];
    for (let i = 0; i < 20; i++) {
      // With the smallest block at 6 of a target of 7, a second block never fits.
      const m = blockMask(grid, 7, rng, { minBlock: 6 });
      const idx = [...m.keys()].filter((j) => m[j]);
      if (idx.length === 0) continue;
      const zs = idx.map((j) => Math.floor(j / 140));
      const ys = idx.map((j) => Math.floor(j / 14) % 10);
      const xs = idx.map((j) => j % 14);
      const span = (a: number[]) => Math.max(...a) - Math.min(...a) + 1;
      expect(idx.length).toBe(span(zs) * span(ys) * span(xs));
    }
  });

  it('half the crops are masked, with ratios from consecutive bins of [0.1, 0.5]', () => {
    const rng = Rng.fromKeys(3);
    const grid: Grid3 = [20, 20, 20];
    const n = 8000;
    for (let rep = 0; rep < 5; rep++) {
      const masks = ibotMasks(8, grid, rng);
      expect(masks).toHaveLength(8);
      const ratios = masks.map((m) => count(m) / n).filter((r) => r > 0).sort((a, b) => a - b);
      expect(ratios).toHaveLength(4);
      // Bin i is [0.1 + 0.1·i, 0.2 + 0.1·i]; a mask may fall a little short of its target.
      ratios.forEach((r, i) => {
        expect(r).toBeLessThanOrEqual(0.2 + 0.1 * i + 1e-9);
        expect(r).toBeGreaterThan(0.05 + 0.1 * i);
      });
    }
  });

  it('the masked crops differ between draws (the order is shuffled)', () => {
    const rng = Rng.fromKeys(4);
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) seen.add(ibotMasks(4, [8, 8, 8], rng).map((m) => (count(m) > 0 ? 1 : 0)).join(''));
    expect(seen.size).toBeGreaterThan(2);
  });

  it('max-pool to a coarser grid matches a brute-force pool, partial blocks included', () => {
    const rng = Rng.fromKeys(5);
    const grid: Grid3 = [13, 9, 16];
    const m = blockMask(grid, 300, rng);
    for (const f of [2, 4, 8]) {
      const { mask, grid: g } = poolMask(m, grid, f);
      expect(g).toEqual([Math.ceil(13 / f), Math.ceil(9 / f), Math.ceil(16 / f)]);
      for (let z = 0; z < g[0]; z++)
        for (let y = 0; y < g[1]; y++)
          for (let x = 0; x < g[2]; x++) {
            let any = 0;
            for (let zz = z * f; zz < Math.min(13, z * f + f); zz++)
              for (let yy = y * f; yy < Math.min(9, y * f + f); yy++)
                for (let xx = x * f; xx < Math.min(16, x * f + f); xx++) any |= m[(zz * 9 + yy) * 16 + xx]!;
            expect(mask[(z * g[1] + y) * g[2] + x]).toBe(any);
          }
    }
  });

  it('replays from a saved RNG state', () => {
    const rng = Rng.fromKeys(6);
    ibotMasks(4, [10, 10, 10], rng);
    const saved = rng.state();
    const a = ibotMasks(4, [10, 10, 10], rng);
    const b = ibotMasks(4, [10, 10, 10], Rng.fromState(saved));
    expect(a.map((m) => Buffer.from(m).toString('base64'))).toEqual(b.map((m) => Buffer.from(m).toString('base64')));
  });
});
