/**
 * The synthetic phantom, foreground indexing, crop boxes (inside the volume, over the body, scale
 * range, determinism), crop resizing geometry, the multi-crop sample, and the prepared-volume cache.
 */
import { describe, expect, it } from 'vitest';
import { checkCropFits, cropResize, FOREGROUND_HU, prepareCropSource, regionSource, sampleCropBox } from '../../src/data/crops';
import { sampleMultiCrop } from '../../src/data/multicrop';
import type { Volume } from '../../src/data/nifti';
import { makePhantom } from '../../src/data/phantom';
import { Rng } from '../../src/data/rng';
import { prepareVolume, VolumeCache } from '../../src/data/volume-cache';

const head = makePhantom({ shape: [64, 72, 56], spacing: [1.1, 1.1, 1.6], kind: 'head', seed: 1 });

function stats(v: Volume) {
  let lo = Infinity, hi = -Infinity, fg = 0;
  for (const x of v.data) {
    lo = Math.min(lo, x);
    hi = Math.max(hi, x);
    if (x > FOREGROUND_HU) fg++;
  }
  return { lo, hi, fg: fg / v.data.length };
}

describe('phantom', () => {
  it('is a deterministic CT-like volume in whole HU', () => {
    const again = makePhantom({ shape: [64, 72, 56], spacing: [1.1, 1.1, 1.6], kind: 'head', seed: 1 });
    expect(again.data).toEqual(head.data);
    expect(makePhantom({ shape: [64, 72, 56], spacing: [1.1, 1.1, 1.6], kind: 'head', seed: 2 }).data).not.toEqual(head.data);
    expect(head.data.every((x) => Number.isInteger(x) && x >= -1024 && x <= 3071)).toBe(true);
    const s = stats(head);
    expect(s.lo).toBeLessThan(-950); // air
    expect(s.hi).toBeGreaterThan(1200); // skull
    expect(s.fg).toBeGreaterThan(0.2);
    expect(s.fg).toBeLessThan(0.8);
    // Corners are air, the centre is brain (soft tissue).
    expect(head.data[0]).toBeLessThan(-900);
    const c = head.data[(32 * 72 + 36) * 56 + 28]!;
    expect(c).toBeGreaterThan(-60);
    expect(c).toBeLessThan(120);
  });

  it('builds a body phantom with lungs, bone and soft tissue; noise 0 is piecewise constant', () => {
    const body = makePhantom({ shape: [48, 40, 32], spacing: [2, 2, 3], kind: 'body', noise: 0 });
    const values = new Set(body.data);
    for (const v of [-1000, -850, -100, 50, 60, 900]) expect(values.has(v)).toBe(true);
    expect(body.affine).toEqual([2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 3, 0, 0, 0, 0, 1]);
  });
});

describe('crop source and boxes', () => {
  const src = prepareVolume(head);

  it('indexes exactly the voxels above −500 HU and their bounding box', () => {
    const v = src.volume;
    const want: number[] = [];
    const lo = [Infinity, Infinity, Infinity], hi = [-1, -1, -1];
    const [, nh, nw] = v.shape;
    v.data.forEach((x, p) => {
      if (x <= -500) return;
      want.push(p);
      const idx = [Math.floor(p / (nh * nw)), Math.floor(p / nw) % nh, p % nw];
      idx.forEach((t, d) => {
        lo[d] = Math.min(lo[d]!, t);
        hi[d] = Math.max(hi[d]!, t + 1);
      });
    });
    expect(Array.from(src.foreground)).toEqual(want);
    expect(src.bboxLo).toEqual(lo);
    expect(src.bboxHi).toEqual(hi);
  });

  it('draws boxes inside the volume, over the body, in the scale range, reproducibly', () => {
    const rng = Rng.fromKeys(3);
    const ref = [0, 1, 2].reduce((m, d) => m * (src.bboxHi[d]! - src.bboxLo[d]!), 1);
    const boxes = [];
    for (let i = 0; i < 200; i++) {
      const spec = i % 2 ? { side: 32, scale: [0.4, 1] as const } : { side: 16, scale: [0.05, 0.4] as const };
      const box = sampleCropBox(src, rng, spec);
      boxes.push(box);
      const { start, size, center } = box;
      for (let d = 0; d < 3; d++) {
        expect(start[d]).toBeGreaterThanOrEqual(0);
        expect(size[d]).toBeGreaterThanOrEqual(1);
        expect(start[d]! + size[d]!).toBeLessThanOrEqual(src.volume.shape[d]!);
        expect(center[d]).toBeGreaterThanOrEqual(start[d]!);
        expect(center[d]).toBeLessThan(start[d]! + size[d]!);
      }
      const [, nh, nw] = src.volume.shape;
      expect(src.volume.data[(center[0] * nh + center[1]) * nw + center[2]]!).toBeGreaterThan(-500);
      // Volume fraction within the range, up to rounding of the sides and clamping to the volume.
      const frac = (size[0] * size[1] * size[2]) / ref;
      expect(frac).toBeLessThanOrEqual(spec.scale[1] * 1.2);
      if (size.every((s, d) => s < src.volume.shape[d]!)) expect(frac).toBeGreaterThanOrEqual(spec.scale[0] * 0.8);
    }
    const rng2 = Rng.fromKeys(3);
    const again = boxes.map((_, i) => sampleCropBox(src, rng2, i % 2 ? { side: 32, scale: [0.4, 1] } : { side: 16, scale: [0.05, 0.4] }));
    expect(again).toEqual(boxes);
  });

  it('resizes with align_corners = false geometry; a side³ box is copied unchanged', () => {
    const shape: [number, number, number] = [10, 12, 14];
    const data = new Float32Array(10 * 12 * 14);
    let p = 0;
    for (let i = 0; i < 10; i++) for (let j = 0; j < 12; j++) for (let k = 0; k < 14; k++) data[p++] = 7 * i - 3 * j + 2 * k;
    const vol = { data, shape };
    const box = { start: [1, 2, 3] as [number, number, number], size: [8, 8, 8] as [number, number, number], center: [0, 0, 0] as [number, number, number] };
    const same = cropResize(vol, box, 8);
    for (let a = 0; a < 8; a++) for (let b = 0; b < 8; b++) for (let c = 0; c < 8; c++) expect(same[(a * 8 + b) * 8 + c]).toBe(data[((a + 1) * 12 + b + 2) * 14 + c + 3]);
    // 8 → 4: output o samples the box at start + (o + ½)·2 − ½, the middle of each voxel pair.
    const half = cropResize(vol, box, 4);
    for (let a = 0; a < 4; a++)
      for (let b = 0; b < 4; b++)
        for (let c = 0; c < 4; c++) {
          const [x, y, z] = [1 + 2 * a + 0.5, 2 + 2 * b + 0.5, 3 + 2 * c + 0.5];
          expect(half[(a * 4 + b) * 4 + c]).toBeCloseTo(7 * x - 3 * y + 2 * z, 4);
        }
  });

  it('explains volumes that are too small, NaN, or without foreground', () => {
    const small = prepareVolume(makePhantom({ shape: [40, 40, 20], spacing: [1.5, 1.5, 1.5], seed: 1 }));
    expect(() => sampleCropBox(small, Rng.fromKeys(1), { side: 32, scale: [0.4, 1] })).toThrow(
      /phantom-head-1: the volume \(40×40×20 voxels at 1\.5×1\.5×1\.5 mm\) is smaller than a 32³ crop along axis 2 \(20 < 32\)/,
    );
    expect(() => checkCropFits({ shape: [96, 96, 95], spacing: [1.5, 1.5, 1.5], name: 'v' }, 96)).toThrow(/axis 2/);
    const nan = { ...head, name: 'nan.nii', data: head.data.slice() };
    nan.data[5] = NaN;
    nan.data[900] = Infinity;
    expect(() => prepareCropSource(nan)).toThrow(/nan\.nii: 2 of \d+ voxels are NaN or infinite \(first at \(0, 0, 5\), value NaN\)/);
    const air = { ...head, name: 'air.nii', data: new Float32Array(head.data.length).fill(-1000) };
    expect(() => prepareCropSource(air)).toThrow(/air\.nii: no foreground: no voxel above -500 HU \(values span -1000…-1000\)/);
    expect(() => sampleCropBox(src, Rng.fromKeys(1), { side: 16, scale: [0.5, 0.2] })).toThrow(/crop scale must satisfy/);
  });
});

describe('sampleMultiCrop', () => {
  const src = prepareVolume(makePhantom({ shape: [90, 90, 70], spacing: [1, 1, 1.5], kind: 'head', seed: 4 }), 1.5);
  const opts = { globalSide: 32, localSide: 16, nGlobal: 2, nLocal: 3 };

  it('gives G globals and L locals of the right sizes with values in [0, 1]', () => {
    const s = sampleMultiCrop(src, Rng.fromKeys(1), opts);
    expect(s.globals.map((v) => v.data.length)).toEqual([32 ** 3, 32 ** 3]);
    expect(s.locals.map((v) => v.data.length)).toEqual([16 ** 3, 16 ** 3, 16 ** 3]);
    for (const v of [...s.globals, ...s.locals]) expect(v.data.every((x) => x >= 0 && x <= 1)).toBe(true);
  });

  it('is deterministic for a seed and resumes exactly from a saved RNG state', () => {
    const a = sampleMultiCrop(src, Rng.fromKeys(11), opts);
    const b = sampleMultiCrop(src, Rng.fromKeys(11), opts);
    expect(b).toEqual(a);
    const rng = Rng.fromKeys(12);
    sampleMultiCrop(src, rng, opts);
    const state = JSON.parse(JSON.stringify(rng.state()));
    const next = sampleMultiCrop(src, rng, opts);
    expect(sampleMultiCrop(src, Rng.fromState(state), opts)).toEqual(next);
    expect(sampleMultiCrop(src, Rng.fromKeys(13), opts)).not.toEqual(a);
  });

  it('writes into given buffers (e.g. batch slices)', () => {
    const batch = new Float32Array(2 * 32 ** 3);
    const dests = [batch.subarray(0, 32 ** 3), batch.subarray(32 ** 3)];
    const s = sampleMultiCrop(src, Rng.fromKeys(1), { ...opts, nLocal: 0 }, { globals: dests });
    expect(s.globals[0]!.data).toBe(dests[0]);
    expect(batch.some((x) => x > 0)).toBe(true);
    expect(() => sampleMultiCrop(src, Rng.fromKeys(1), opts, { globals: [new Float32Array(10)] })).toThrow(/global output 0 holds 10 values/);
  });

  it('refuses a volume smaller than the global crop before doing any work', () => {
    expect(() => sampleMultiCrop(src, Rng.fromKeys(1))).toThrow(/smaller than a 96³ crop/);
  });

  it('with a region, draws all of a sample\'s crops from one part of the body', () => {
    // Spread of the crop centres within a sample: with a 5 % region they stay near each other,
    // without one they roam the whole body.
    const spread = (regionScale: [number, number] | null) => {
      let worst = 0;
      for (let k = 0; k < 20; k++) {
        const s = sampleMultiCrop(src, Rng.fromKeys(40, k), { ...opts, nLocal: 4, regionScale });
        const c = [...s.globals, ...s.locals].map((v) => v.box.center);
        for (const a of c) for (const b of c) worst = Math.max(worst, ...a.map((x, d) => Math.abs(x - b[d]!)));
      }
      return worst;
    };
    const box = src.bboxHi.map((h, d) => h - src.bboxLo[d]!);
    const regionEdge = Math.cbrt(0.05 * box[0]! * box[1]! * box[2]!) * (4 / 3) ** (2 / 3); // widest aspect
    expect(spread([0.05, 0.05])).toBeLessThan(regionEdge);
    expect(spread(null)).toBeGreaterThan(1.5 * regionEdge);
  });
});

describe('sampleMultiCrop windows', () => {
  const src = prepareVolume(makePhantom({ shape: [90, 90, 70], spacing: [1, 1, 1.5], kind: 'head', seed: 4 }), 1.5);
  it('per sample: every crop of a sample has the same window, and samples differ', () => {
    const names = (windowPerSample: boolean) =>
      Array.from({ length: 12 }, (_, k) => {
        const s = sampleMultiCrop(src, Rng.fromKeys(50, k), { globalSide: 16, localSide: 8, nGlobal: 2, nLocal: 3, windowPerSample });
        return [...s.globals, ...s.locals].map((v) => v.aug.window.name);
      });
    const shared = names(true);
    for (const w of shared) expect(new Set(w).size).toBe(1);
    expect(new Set(shared.map((w) => w[0])).size).toBeGreaterThan(1);
    expect(names(false).some((w) => new Set(w).size > 1)).toBe(true);
  });
});

describe('regionSource', () => {
  it('keeps exactly the foreground voxels inside the box, and the box as the bounding box', () => {
    const src = prepareCropSource(head);
    const box = { start: [10, 20, 5] as [number, number, number], size: [30, 25, 40] as [number, number, number], center: [0, 0, 0] as [number, number, number] };
    const r = regionSource(src, box);
    const [, nh, nw] = head.shape;
    const inside = [...src.foreground].filter((p) => {
      const a = Math.floor(p / (nh * nw)), b = Math.floor(p / nw) % nh, c = p % nw;
      return a >= 10 && a < 40 && b >= 20 && b < 45 && c >= 5 && c < 45;
    });
    expect(inside.length).toBeGreaterThan(0);
    expect([...r.foreground]).toEqual(inside);
    expect(r.bboxLo).toEqual([0, 1, 2].map((d) => Math.max(box.start[d]!, src.bboxLo[d]!)));
    expect(r.bboxHi).toEqual([0, 1, 2].map((d) => Math.min(box.start[d]! + box.size[d]!, src.bboxHi[d]!)));
    expect(r.volume).toBe(src.volume);
    // A box over air only: the whole source (never drawn by sampleCropBox, which centres on the body).
    expect(regionSource(src, { start: [0, 0, 0], size: [1, 1, 1], center: [0, 0, 0] })).toBe(src);
  });
});

describe('VolumeCache', () => {
  it('prepares each key once, shares concurrent loads, evicts least recently used, forgets failures', async () => {
    const loads: string[] = [];
    const cache = new VolumeCache({
      load: async (key) => {
        loads.push(key);
        if (key === 'bad') throw new Error('no such scan');
        // All soft tissue: 32 kB of data and 32 kB of foreground index per entry.
        const data = new Float32Array(20 ** 3).fill(40);
        return { data, shape: [20, 20, 20], spacing: [1.5, 1.5, 1.5], affine: [1.5, 0, 0, 0, 0, 1.5, 0, 0, 0, 0, 1.5, 0, 0, 0, 0, 1], dtype: 'int16', name: key };
      },
      maxBytes: 2.5 * 64000, // room for two entries
    });
    const [a1, a2] = await Promise.all([cache.get('a'), cache.get('a')]);
    expect(a1).toBe(a2);
    await cache.get('bb');
    await cache.get('a'); // 'a' is now the most recent
    await cache.get('ccc'); // over budget: 'bb' goes
    expect(loads).toEqual(['a', 'bb', 'ccc']);
    await cache.get('a');
    await cache.get('bb');
    expect(loads).toEqual(['a', 'bb', 'ccc', 'bb']);
    expect(cache.usedBytes).toBeLessThanOrEqual(cache.maxBytes);
    await expect(cache.get('bad')).rejects.toThrow(/no such scan/);
    await expect(cache.get('bad')).rejects.toThrow(/no such scan/);
    expect(loads.filter((k) => k === 'bad').length).toBe(2);
  });

  it('never evicts a scan still loading (that frees nothing and loses the load)', async () => {
    const loads: string[] = [];
    let finishX: () => void = () => {};
    const volume = (key: string) => ({ data: new Float32Array(20 ** 3).fill(40), shape: [20, 20, 20] as [number, number, number], spacing: [1.5, 1.5, 1.5] as [number, number, number], affine: [1.5, 0, 0, 0, 0, 1.5, 0, 0, 0, 0, 1.5, 0, 0, 0, 0, 1], dtype: 'int16', name: key });
    const cache = new VolumeCache({
      load: (key) => {
        loads.push(key);
        return key === 'x' ? new Promise((done) => (finishX = () => done(volume(key)))) : Promise.resolve(volume(key));
      },
      maxBytes: 1.5 * 64000, // room for one entry
    });
    const x = cache.get('x'); // first in recency order, still loading
    await cache.get('y');
    await cache.get('z'); // over budget: 'y' goes, 'x' stays
    finishX();
    await x;
    await cache.get('x');
    expect(loads).toEqual(['x', 'y', 'z']);
  });
});
