/**
 * NIfTI decoding (src/data): files built here field by field (independent of the reader), checked for
 * the (i, j, k) → (D, H, W) transpose, every datatype, scaling, byte order, gzip, affines, and errors.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeNifti, windowHu, type Volume } from '../../src/data/nifti';
import { loadNifti } from '../../src/data/nifti-file';

type DT = 'uint8' | 'int8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64';
const CODES: Record<DT, [code: number, bytes: number]> = {
  uint8: [2, 1], int16: [4, 2], int32: [8, 4], float32: [16, 4], float64: [64, 8], int8: [256, 1], uint16: [512, 2], uint32: [768, 4],
};

interface Spec {
  version?: 1 | 2;
  dims: number[]; // dim[1..]
  /** Voxel values in file order (i fastest). */
  values: ArrayLike<number>;
  dtype?: DT;
  code?: number; // overrides the datatype code (for unsupported types)
  le?: boolean;
  voxOffset?: number;
  slope?: number;
  inter?: number;
  pixdim?: number[]; // pixdim[0..3]
  qformCode?: number;
  sformCode?: number;
  quatern?: [number, number, number];
  qoffset?: [number, number, number];
  srow?: number[]; // 12 values
}

/** A single-file NIfTI-1 or NIfTI-2, every header field placed by hand. */
function writeNifti(s: Spec): Uint8Array {
  const v2 = s.version === 2;
  const le = s.le ?? true;
  const dtype = s.dtype ?? 'float32';
  const [code, nb] = CODES[dtype];
  const hdr = v2 ? 540 : 348;
  const off = s.voxOffset ?? hdr + 4;
  const out = new Uint8Array(off + s.values.length * nb);
  const dv = new DataView(out.buffer);
  const i16 = (at: number, v: number) => dv.setInt16(at, v, le);
  const i32 = (at: number, v: number) => dv.setInt32(at, v, le);
  const i64 = (at: number, v: number) => dv.setBigInt64(at, BigInt(v), le);
  const real = (at: number, v: number) => (v2 ? dv.setFloat64(at, v, le) : dv.setFloat32(at, v, le));
  const R = v2 ? 8 : 4; // size of a real
  const dims = [s.dims.length, ...s.dims];
  const pixdim = [...(s.pixdim ?? [1, 1, 1, 1]), 1, 1, 1, 1].slice(0, 8);
  const magic = v2 ? [0x6e, 0x2b, 0x32, 0, 0x0d, 0x0a, 0x1a, 0x0a] : [0x6e, 0x2b, 0x31, 0];
  i32(0, hdr);
  const at = v2
    ? { magic: 4, datatype: 12, bitpix: 14, dim: 16, pixdim: 104, vox: 168, slope: 176, inter: 184, qcode: 344, scode: 348, quat: 352, srow: 400 }
    : { magic: 344, datatype: 70, bitpix: 72, dim: 40, pixdim: 76, vox: 108, slope: 112, inter: 116, qcode: 252, scode: 254, quat: 256, srow: 280 };
  out.set(magic, at.magic);
  i16(at.datatype, s.code ?? code);
  i16(at.bitpix, nb * 8);
  for (let d = 0; d < 8; d++) (v2 ? i64 : i16)(at.dim + d * (v2 ? 8 : 2), dims[d] ?? 1);
  pixdim.forEach((p, d) => real(at.pixdim + d * R, p));
  if (v2) i64(at.vox, off);
  else dv.setFloat32(at.vox, off, le);
  real(at.slope, s.slope ?? 1);
  real(at.inter, s.inter ?? 0);
  (v2 ? i32 : i16)(at.qcode, s.qformCode ?? 0);
  (v2 ? i32 : i16)(at.scode, s.sformCode ?? 0);
  [...(s.quatern ?? [0, 0, 0]), ...(s.qoffset ?? [0, 0, 0])].forEach((q, n) => real(at.quat + n * R, q));
  (s.srow ?? [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]).forEach((q, n) => real(at.srow + n * R, q));
  // Junk between the header and vox_offset must be skipped, not read.
  for (let p = hdr + 4; p < off; p++) out[p] = 0xa5;
  const set: Record<DT, (at: number, v: number) => void> = {
    uint8: (a, v) => dv.setUint8(a, v), int8: (a, v) => dv.setInt8(a, v),
    int16: (a, v) => dv.setInt16(a, v, le), uint16: (a, v) => dv.setUint16(a, v, le),
    int32: (a, v) => dv.setInt32(a, v, le), uint32: (a, v) => dv.setUint32(a, v, le),
    float32: (a, v) => dv.setFloat32(a, v, le), float64: (a, v) => dv.setFloat64(a, v, le),
  };
  for (let n = 0; n < s.values.length; n++) set[dtype](off + n * nb, s.values[n]!);
  return out;
}

/** Voxel values that encode their own index, stored i fastest as NIfTI does. */
const code = (i: number, j: number, k: number) => i * 100 + j * 10 + k;
function indexVolume(ni: number, nj: number, nk: number): number[] {
  const v: number[] = [];
  for (let k = 0; k < nk; k++) for (let j = 0; j < nj; j++) for (let i = 0; i < ni; i++) v.push(code(i, j, k));
  return v;
}
function expectTransposed(vol: Volume, ni: number, nj: number, nk: number, f = code): void {
  expect(vol.shape).toEqual([ni, nj, nk]);
  expect(vol.data.length).toBe(ni * nj * nk);
  let bad = 0;
  for (let i = 0; i < ni; i++) for (let j = 0; j < nj; j++) for (let k = 0; k < nk; k++) {
    if (vol.data[(i * nj + j) * nk + k] !== Math.fround(f(i, j, k))) bad++;
  }
  expect(bad).toBe(0);
}
/** The bytes with every bit at the given positions inverted. */
const flip = (b: Uint8Array, ...at: number[]): Uint8Array => {
  const c = b.slice();
  for (const p of at) c[p] = ~c[p]! & 0xff;
  return c;
};
const errorOf = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(Error);
    return (e as Error).message;
  }
  throw new Error('expected an error');
};

const [NI, NJ, NK] = [3, 5, 7];
const IDX = indexVolume(NI, NJ, NK);

describe('decodeNifti layout', () => {
  for (const version of [1, 2] as const) {
    it(`NIfTI-${version}: data[(i*nj + j)*nk + k] is stored voxel (i, j, k), odd dims`, () => {
      const vol = decodeNifti(writeNifti({ version, dims: [NI, NJ, NK], values: IDX }), 'a.nii');
      expectTransposed(vol, NI, NJ, NK);
      expect(vol.dtype).toBe('float32');
      expect(vol.name).toBe('a.nii');
    });
    it(`NIfTI-${version}: gzip gives the same volume`, () => {
      const raw = writeNifti({ version, dims: [NI, NJ, NK], values: IDX, dtype: 'int16' });
      const vol = decodeNifti(gzipSync(raw), 'a.nii.gz');
      expectTransposed(vol, NI, NJ, NK);
      expect(vol.dtype).toBe('int16');
    });
    it(`NIfTI-${version}: big-endian int16, float64 and gzipped`, () => {
      expectTransposed(decodeNifti(writeNifti({ version, dims: [NI, NJ, NK], values: IDX, dtype: 'int16', le: false }), 'be.nii'), NI, NJ, NK);
      const neg = (i: number, j: number, k: number) => -code(i, j, k) / 3;
      const vals = IDX.map((v) => -v / 3);
      expectTransposed(decodeNifti(writeNifti({ version, dims: [NI, NJ, NK], values: vals, dtype: 'float64', le: false }), 'be.nii'), NI, NJ, NK, neg);
      expectTransposed(decodeNifti(gzipSync(writeNifti({ version, dims: [NI, NJ, NK], values: IDX, dtype: 'int32', le: false })), 'be.nii.gz'), NI, NJ, NK);
    });
    it(`NIfTI-${version}: vox_offset beyond the header (with junk before it)`, () => {
      const voxOffset = version === 1 ? 400 : 1003; // 1003: odd, so the data is unaligned in the file
      const vol = decodeNifti(writeNifti({ version, dims: [NI, NJ, NK], values: IDX, dtype: 'float64', voxOffset }), 'off.nii');
      expectTransposed(vol, NI, NJ, NK);
    });
    it(`NIfTI-${version}: 4-D with dim[4] = 1 is 3-D; more frames is an error`, () => {
      expectTransposed(decodeNifti(writeNifti({ version, dims: [NI, NJ, NK, 1], values: IDX }), 'a4.nii'), NI, NJ, NK);
      const msg = errorOf(() => decodeNifti(writeNifti({ version, dims: [NI, NJ, NK, 2], values: [...IDX, ...IDX] }), 'frames.nii'));
      expect(msg).toMatch(/^frames\.nii: .*more than 3 non-singleton/);
    });
  }

  it('dims beyond one 32-voxel tile (67 × 2 × 45) transpose exactly', () => {
    const [ni, nj, nk] = [67, 2, 45];
    const fileIndex = (i: number, j: number, k: number) => i + ni * (j + nj * k);
    const vals = Array.from({ length: ni * nj * nk }, (_, n) => n);
    for (const le of [true, false]) {
      const vol = decodeNifti(writeNifti({ version: 2, dims: [ni, nj, nk], values: vals, dtype: 'uint16', le }), 'tiles.nii');
      expectTransposed(vol, ni, nj, nk, fileIndex);
    }
  });

  it('every supported datatype, with its extremes, converted to f32', () => {
    const extremes: Record<DT, number[]> = {
      uint8: [0, 1, 254, 255], int8: [-128, -1, 0, 127], int16: [-32768, -1, 0, 32767], uint16: [0, 1, 40000, 65535],
      int32: [-2147483648, -1, 16777217, 2147483647], uint32: [0, 1, 16777217, 4294967295],
      float32: [-3.4e38, -0, 1e-40, 0.1], float64: [1 / 3, -1e300, 1e-300, 2 ** 24 + 1],
    };
    for (const [dtype, vals] of Object.entries(extremes) as [DT, number[]][]) {
      for (const le of [true, false]) {
        const vol = decodeNifti(writeNifti({ dims: [2, 2, 1], values: vals, dtype, le }), `${dtype}.nii`);
        expect(vol.dtype).toBe(dtype);
        // dims (2, 2, 1): file order (0,0),(1,0),(0,1),(1,1) → row-major (0,0),(0,1),(1,0),(1,1).
        const want = [vals[0]!, vals[2]!, vals[1]!, vals[3]!].map(Math.fround);
        expect(Array.from(vol.data)).toEqual(want);
      }
    }
  });

  it('a Node Buffer or a view at an odd offset decodes the same', () => {
    const raw = writeNifti({ dims: [NI, NJ, NK], values: IDX, dtype: 'int16' });
    const big = new Uint8Array(raw.length + 5);
    big.set(raw, 3);
    expectTransposed(decodeNifti(big.subarray(3, 3 + raw.length), 'view.nii'), NI, NJ, NK);
    expectTransposed(decodeNifti(Buffer.from(gzipSync(raw)), 'buf.nii.gz'), NI, NJ, NK);
  });
});

describe('decodeNifti scaling', () => {
  const raw = [-1024, 0, 1, 3000];
  for (const version of [1, 2] as const) {
    it(`NIfTI-${version}: int16 with scl_slope/scl_inter (f64 math, one f32 rounding)`, () => {
      const vol = decodeNifti(writeNifti({ version, dims: [4, 1, 1], values: raw, dtype: 'int16', slope: 0.5, inter: -1000.25 }), 's.nii');
      expect(Array.from(vol.data)).toEqual(raw.map((v) => Math.fround(v * 0.5 - 1000.25)));
      expect(vol.dtype).toBe('int16');
      const slope = Math.fround(0.1); // as NIfTI-1 stores it; exact in NIfTI-2
      const v2 = decodeNifti(writeNifti({ version, dims: [4, 1, 1], values: raw, dtype: 'int16', slope, inter: 7 }), 's.nii');
      expect(Array.from(v2.data)).toEqual(raw.map((v) => Math.fround(v * slope + 7)));
    });
  }
  it('slope 0 or NaN means no scaling, even with an intercept', () => {
    for (const slope of [0, NaN, Infinity]) {
      const vol = decodeNifti(writeNifti({ dims: [4, 1, 1], values: raw, dtype: 'int16', slope, inter: 5 }), 's0.nii');
      expect(Array.from(vol.data)).toEqual(raw);
    }
  });
  it('a valid slope with a non-finite intercept is an error naming the file', () => {
    const msg = errorOf(() => decodeNifti(writeNifti({ dims: [4, 1, 1], values: raw, dtype: 'int16', slope: 2, inter: NaN }), 'inter.nii'));
    expect(msg).toMatch(/^inter\.nii: .*scl_inter/);
  });
});

describe('decodeNifti affine and spacing', () => {
  const base = { dims: [NI, NJ, NK], values: IDX, pixdim: [1, 0.5, 0.75, 2] };
  it('sform when sform_code > 0 (it wins over qform), spacing from its columns', () => {
    const srow = [0, 0, 2, -10, 0.5, 0, 0, 20, 0, -0.75, 0, 30];
    for (const version of [1, 2] as const) {
      const vol = decodeNifti(writeNifti({ ...base, version, sformCode: 2, qformCode: 1, srow }), 's.nii');
      expect(vol.affine).toEqual([...srow, 0, 0, 0, 1]);
      expect(vol.spacing).toEqual([0.5, 0.75, 2]);
    }
  });
  it('qform when only qform_code > 0: a 90° turn about z, qfac −1, offsets', () => {
    const h = Math.SQRT1_2;
    for (const version of [1, 2] as const) {
      const pixdim = [-1, 0.5, 0.75, 2];
      const vol = decodeNifti(writeNifti({ ...base, version, pixdim, qformCode: 1, quatern: [0, 0, h], qoffset: [1, 2, 3] }), 'q.nii');
      // R = [[0,-1,0],[1,0,0],[0,0,1]] (w = b... = √½), columns scaled by (0.5, 0.75, −2).
      const want = [0, -0.75, 0, 1, 0.5, 0, 0, 2, 0, 0, -2, 3, 0, 0, 0, 1];
      vol.affine.forEach((x, n) => expect(x).toBeCloseTo(want[n]!, 6));
      vol.spacing.forEach((x, n) => expect(x).toBeCloseTo([0.5, 0.75, 2][n]!, 6));
    }
  });
  it('neither code: nibabel base affine (x flipped, centred)', () => {
    const vol = decodeNifti(writeNifti(base), 'b.nii');
    expect(vol.affine).toEqual([-0.5, 0, 0, 0.5, 0, 0.75, 0, -1.5, 0, 0, 2, -6, 0, 0, 0, 1]);
    expect(vol.spacing).toEqual([0.5, 0.75, 2]);
  });
  it('MONAI correct_nifti_header_if_necessary: an sform disagreeing with pixdim gives way to a qform that agrees', () => {
    const srow = [3, 0, 0, 0, 0, 3, 0, 0, 0, 0, 3, 0];
    const vol = decodeNifti(writeNifti({ ...base, sformCode: 1, qformCode: 1, srow, qoffset: [4, 5, 6] }), 'r.nii');
    expect(vol.affine).toEqual([0.5, 0, 0, 4, 0, 0.75, 0, 5, 0, 0, 2, 6, 0, 0, 0, 1]);
    // A qform always agrees with pixdim in 3-D. In 4-D MONAI compares 4 columns, the last being the
    // translation against pixdim[4]; with non-zero offsets neither form agrees and the sform stays.
    const srowT = [3, 0, 0, 10, 0, 3, 0, 0, 0, 0, 3, 0];
    const four = decodeNifti(writeNifti({ ...base, dims: [NI, NJ, NK, 1], sformCode: 1, srow: srowT, qoffset: [4, 5, 6] }), 'r4.nii');
    expect(four.affine).toEqual([...srowT, 0, 0, 0, 1]);
    expect(four.spacing).toEqual([3, 3, 3]);
  });
});

describe('decodeNifti errors name the file', () => {
  const good = writeNifti({ dims: [NI, NJ, NK], values: IDX, dtype: 'int16' });
  const good2 = writeNifti({ version: 2, dims: [NI, NJ, NK], values: IDX, dtype: 'int16' });
  const cases: [string, () => Uint8Array, RegExp][] = [
    ['truncated data', () => good.slice(0, good.length - 1), /truncated: .* need/],
    ['truncated NIfTI-2 data', () => good2.slice(0, 600), /truncated: .* need/],
    ['truncated header', () => good.slice(0, 100), /truncated header/],
    ['bad magic', () => { const b = good.slice(); b[345] = 0x3f; return b; }, /bad magic/],
    ['bad NIfTI-2 magic', () => { const b = good2.slice(); b[4] = 0x78; return b; }, /bad magic/],
    ['hdr/img pair magic', () => { const b = good.slice(); b[345] = 0x69; return b; }, /\.hdr\/\.img pair/],
    ['bad sizeof_hdr', () => { const b = good.slice(); new DataView(b.buffer).setInt32(0, 349, true); return b; }, /bad sizeof_hdr 349/],
    ['RGB24', () => writeNifti({ dims: [2, 2, 2], values: [], code: 128 }), /unsupported datatype RGB24/],
    ['complex64', () => writeNifti({ dims: [2, 2, 2], values: [], code: 32 }), /unsupported datatype complex64/],
    ['int64', () => writeNifti({ version: 2, dims: [2, 2, 2], values: [], code: 1024 }), /unsupported datatype int64/],
    ['zero dim', () => writeNifti({ dims: [3, 0, 7], values: [] }), /non-positive .*dim\[2\] = 0/],
    ['negative dim', () => writeNifti({ dims: [3, 5, -7], values: [] }), /non-positive .*dim\[3\] = -7/],
    ['negative NIfTI-2 dim', () => writeNifti({ version: 2, dims: [-3, 5, 7], values: [] }), /non-positive .*dim\[1\] = -3/],
    ['vox_offset inside the header', () => { const b = good.slice(); new DataView(b.buffer).setFloat32(108, 0, true); return b; }, /vox_offset 0 is inside the header/],
    ['corrupt gzip stream', () => flip(gzipSync(good), 20, 21, 22), /corrupt gzip/],
    ['gzip CRC mismatch', () => { const z = gzipSync(good); return flip(z, z.length - 6); }, /corrupt gzip/],
    ['truncated gzip', () => gzipSync(good).slice(0, 60), /corrupt gzip/],
    ['empty file', () => new Uint8Array(0), /truncated header/],
  ];
  for (const [what, make, re] of cases) {
    it(what, () => {
      const msg = errorOf(() => decodeNifti(make(), `/data/${what.replace(/ /g, '_')}.nii`));
      expect(msg.startsWith(`/data/${what.replace(/ /g, '_')}.nii: `)).toBe(true);
      expect(msg).toMatch(re);
    });
  }
});

describe('windowHu', () => {
  it('clips to [lo, hi] and maps onto [0, 1], as MONAI ScaleIntensityRange(clip=True)', () => {
    const d = new Float32Array([-2000, -1000, -175, 0, 250, 1000, NaN]);
    const w = windowHu(d, -175, 250);
    expect(Array.from(w.subarray(0, 3))).toEqual([0, 0, 0]);
    expect(w[3]).toBe(Math.fround(175 / 425));
    expect(Array.from(w.subarray(4, 6))).toEqual([1, 1]);
    expect(w[6]).toBeNaN();
  });
  it('rejects lo >= hi and non-finite bounds', () => {
    const d = new Float32Array(1);
    expect(() => windowHu(d, 1, 1)).toThrow(/lo < hi/);
    expect(() => windowHu(d, 2, 1)).toThrow(/lo < hi/);
    expect(() => windowHu(d, NaN, 1)).toThrow(/lo < hi/);
  });
});

describe('loadNifti (Node)', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'reef-nifti-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  it('loads .nii and .nii.gz from disk', async () => {
    const raw = writeNifti({ version: 2, dims: [NI, NJ, NK], values: IDX, dtype: 'uint16', le: false });
    await writeFile(join(dir, 'v.nii'), raw);
    await writeFile(join(dir, 'v.nii.gz'), gzipSync(raw));
    expectTransposed(await loadNifti(join(dir, 'v.nii')), NI, NJ, NK);
    const vol = await loadNifti(join(dir, 'v.nii.gz'));
    expectTransposed(vol, NI, NJ, NK);
    expect(vol.name).toBe(join(dir, 'v.nii.gz'));
  });
  it('a missing file and a corrupt file name the path', async () => {
    await expect(loadNifti(join(dir, 'nope.nii'))).rejects.toThrow(`${join(dir, 'nope.nii')}: cannot read`);
    await writeFile(join(dir, 'bad.nii.gz'), gzipSync(new Uint8Array(10)).slice(0, 15));
    await expect(loadNifti(join(dir, 'bad.nii.gz'))).rejects.toThrow(`${join(dir, 'bad.nii.gz')}: corrupt gzip`);
  });

  const fixture = '/work/shared/fixtures/swin-tiny/input.nii';
  it.skipIf(!existsSync(fixture))('swin-tiny fixture: shape (40, 56, 48), spacing 1.5, finite', async () => {
    const vol = await loadNifti(fixture);
    expect(vol.shape).toEqual([40, 56, 48]);
    expect(vol.spacing).toEqual([1.5, 1.5, 1.5]);
    expect(vol.dtype).toBe('float32');
    let min = Infinity, max = -Infinity, sum = 0, nonFinite = 0;
    for (const v of vol.data) {
      if (!Number.isFinite(v)) nonFinite++;
      min = Math.min(min, v);
      max = Math.max(max, v);
      sum += v;
    }
    expect(nonFinite).toBe(0);
    // Spot-check the transpose against the stored (Fortran-order) f32 at a few voxels.
    const raw = new DataView(new Uint8Array(await readFile(fixture)).buffer);
    for (const [i, j, k] of [[1, 2, 3], [39, 55, 47], [0, 0, 1], [20, 0, 0]] as const) {
      expect(vol.data[(i * 56 + j) * 48 + k]).toBe(raw.getFloat32(352 + 4 * (i + 40 * (j + 56 * k)), true));
    }
    console.log(`swin-tiny input.nii: min ${min}, max ${max}, mean ${sum / vol.data.length}, affine ${vol.affine.join(' ')}`);
  });
});
