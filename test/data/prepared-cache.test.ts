/**
 * Resampled scans on disk: a scan prepared through the cache is bitwise the scan prepared without it,
 * the second time it comes from the cache file (shown by planting a different volume there), an
 * edited source misses, and a damaged entry is a miss that is rewritten, never an error.
 */
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeNifti1 } from '../../src/data/nifti-write';
import { makePhantom } from '../../src/data/phantom';
import { preparedCacheFile, readPrepared, writePrepared } from '../../src/data/prepared-cache';
import { prepareScan } from '../../src/data/scan-file';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'reef-prepared-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe('prepared-scan cache', () => {
  it('gives bitwise the uncached scan, reads it back from disk, and misses when the source changes', async () => {
    const scan = join(dir, 'ct.nii');
    // Anisotropic odd spacing: the resampled spacing and affine are not round numbers in f32.
    await writeFile(scan, encodeNifti1(makePhantom({ shape: [41, 37, 29], spacing: [0.957, 1.13, 2.1], seed: 9 }), { dtype: 'int16' }));
    const cacheDir = join(dir, 'cache');
    const plain = await prepareScan(scan, { minSide: 16 });
    const first = await prepareScan(scan, { minSide: 16, cacheDir });
    expect((await readdir(cacheDir)).filter((f) => f.endsWith('.prepared'))).toHaveLength(1);
    const second = await prepareScan(scan, { minSide: 16, cacheDir });
    for (const s of [first, second]) {
      expect(same(s.volume.data, plain.volume.data)).toBe(true);
      expect(s.volume.shape).toEqual(plain.volume.shape);
      expect(s.volume.spacing).toEqual(plain.volume.spacing);
      expect(s.volume.affine).toEqual(plain.volume.affine);
      expect(s.volume.name).toBe(scan);
      expect(same(new Float32Array(s.foreground.buffer), new Float32Array(plain.foreground.buffer))).toBe(true);
    }
    // The second read came from the file: plant another volume of the same shape there.
    const file = await preparedCacheFile(cacheDir, scan, [1.5, 1.5, 1.5]);
    const planted = { ...plain.volume, data: plain.volume.data.map((v) => v + 1) };
    await writePrepared(file, planted, scan);
    expect(same((await prepareScan(scan, { minSide: 16, cacheDir })).volume.data, planted.data)).toBe(true);
    // An edited source (new modification time) is another entry.
    await utimes(scan, new Date(), new Date(Date.now() + 5000));
    expect(await preparedCacheFile(cacheDir, scan, [1.5, 1.5, 1.5])).not.toBe(file);
    expect(same((await prepareScan(scan, { minSide: 16, cacheDir })).volume.data, plain.volume.data)).toBe(true);
  });

  it('treats a damaged entry as a miss and rewrites it', async () => {
    const scan = join(dir, 'ct2.nii');
    await writeFile(scan, encodeNifti1(makePhantom({ shape: [30, 30, 30], spacing: [1.2, 1.2, 1.2], seed: 10 }), { dtype: 'int16' }));
    const cacheDir = join(dir, 'cache2');
    const plain = await prepareScan(scan, { minSide: 16 });
    await prepareScan(scan, { minSide: 16, cacheDir });
    const file = await preparedCacheFile(cacheDir, scan, [1.5, 1.5, 1.5]);
    const whole = await readFile(file);
    // Cut short, with bytes after the voxels, a header longer than the file, a header that is not JSON, not an entry.
    const headerEnd = 'REEF-PREPARED-1\n'.length + 4;
    const badJson = Buffer.from(whole);
    badJson[headerEnd] = 0x21;
    for (const damaged of [whole.subarray(0, whole.length - 4), Buffer.concat([whole, Buffer.alloc(4)]), Buffer.from('REEF-PREPARED-1\n\xff\xff\xff\xff{'), badJson, Buffer.from('something else')]) {
      await writeFile(file, damaged);
      expect(await readPrepared(file, scan)).toBeNull();
      expect(same((await prepareScan(scan, { minSide: 16, cacheDir })).volume.data, plain.volume.data)).toBe(true);
      expect((await readFile(file)).equals(whole)).toBe(true);
    }
  });
});
