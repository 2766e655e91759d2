/**
 * DICOM CT series (src/data/dicom.ts, dicom-folder.ts): slices written by test/data/dicom-writer.ts
 * (independent of the reader) under random names and shuffled InstanceNumbers, checked for exact HU,
 * ordering along the slice normal, the affine, every native transfer syntax, and bad-file handling.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assembleSeries, decodeDicomSlice, DicomError } from '../../src/data/dicom';
import { isDicomFolder, loadDicomSeries } from '../../src/data/dicom-folder';
import type { Volume } from '../../src/data/nifti';
import { Rng } from '../../src/data/rng';
import { TS, writeCtSlice, type CtSliceSpec } from './dicom-writer';

let root: string;
let folders = 0;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'reef-dicom-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A fresh folder holding these files. */
async function folder(files: Record<string, Uint8Array | string>): Promise<string> {
  const dir = join(root, `series${folders++}`);
  await mkdir(dir);
  for (const [name, data] of Object.entries(files)) await writeFile(join(dir, name), data);
  return dir;
}

type Vec = [number, number, number];
const cross = (a: readonly number[], b: readonly number[]): Vec => [
  a[1]! * b[2]! - a[2]! * b[1]!,
  a[2]! * b[0]! - a[0]! * b[2]!,
  a[0]! * b[1]! - a[1]! * b[0]!,
];

interface SeriesOpts {
  n?: number;
  rows?: number;
  columns?: number;
  orientation?: number[];
  origin?: Vec;
  gap?: number;
  pixelSpacing?: [number, number];
  slope?: number;
  intercept?: number;
  uid?: string;
  signed?: boolean;
}
const AXIAL = [1, 0, 0, 0, 1, 0];
/** Unit, orthogonal, exact in short decimals; the normal (−0.64, 0.48, −0.6) points down in z. */
const OBLIQUE = [0.6, 0.8, 0, 0.48, -0.36, -0.8];

/** Slice specs in stacking order (slice s at origin + s·gap·normal), with fresh random 16-bit pixels. */
function series(rng: Rng, o: SeriesOpts = {}): CtSliceSpec[] {
  const { n = 5, rows = 7, columns = 9, orientation = AXIAL, origin = [-120.5, -80.25, 33], gap = 1.25, pixelSpacing = [0.7, 0.9] } = o;
  const signed = o.signed ?? true;
  const normal = cross(orientation.slice(0, 3), orientation.slice(3, 6));
  return Array.from({ length: n }, (_, s) => ({
    rows,
    columns,
    pixels: Int32Array.from({ length: rows * columns }, () => (signed ? rng.int(65536) - 32768 : rng.int(65536))),
    seriesUid: o.uid ?? '2.25.111',
    position: origin.map((x, a) => x + s * gap * normal[a]!),
    orientation,
    pixelSpacing,
    sliceThickness: gap,
    slope: o.slope ?? 2,
    intercept: o.intercept ?? -1024,
    instanceNumber: s + 1,
    pixelRepresentation: signed ? 1 : 0,
  }));
}

function shuffle<T>(rng: Rng, xs: readonly T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

const monotonic = (xs: readonly (string | number)[]): boolean =>
  xs.every((x, i) => i === 0 || xs[i - 1]! < x) || xs.every((x, i) => i === 0 || xs[i - 1]! > x);

/**
 * Files under random extensionless names, InstanceNumbers shuffled; from 3 slices on, neither the
 * name order nor the InstanceNumber order is the stacking order (or its reverse), so only positions
 * can get it right.
 */
function asFiles(rng: Rng, specs: readonly CtSliceSpec[]): { files: Record<string, Uint8Array>; names: string[] } {
  const n = specs.length;
  let instances: number[], names: string[];
  do instances = shuffle(rng, Array.from({ length: n }, (_, i) => i + 1));
  while (n >= 3 && monotonic(instances));
  do names = specs.map(() => rng.u32().toString(16).padStart(8, '0'));
  while (n >= 3 && monotonic(names));
  const files: Record<string, Uint8Array> = {};
  for (const i of shuffle(rng, [...specs.keys()])) files[names[i]!] = writeCtSlice({ ...specs[i]!, instanceNumber: instances[i]! });
  return { files, names };
}

/** Voxel (s, r, c) must be the f64 value stored·slope + intercept of slice s, rounded once to f32. */
function expectHu(vol: Volume, specs: readonly CtSliceSpec[]): void {
  const { rows, columns } = specs[0]!;
  expect(vol.shape).toEqual([specs.length, rows, columns]);
  let bad = 0;
  specs.forEach((sp, s) => {
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < columns; c++) {
        const want = Math.fround(sp.pixels[r * columns + c]! * sp.slope! + sp.intercept!);
        if (vol.data[(s * rows + r) * columns + c] !== want) bad++;
      }
    }
  });
  expect(bad).toBe(0);
}

const errorOf = async (f: () => unknown): Promise<Error> => {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(DicomError);
    expect((e as Error).name).toBe('DicomError');
    return e as Error;
  }
  throw new Error('expected a DicomError');
};

describe('loadDicomSeries', () => {
  for (const signed of [true, false]) {
    it(`${signed ? 'signed' : 'unsigned'} 16-bit axial series from shuffled, randomly named files: exact HU in (slice, row, column)`, async () => {
      const rng = Rng.fromKeys(1, signed ? 1 : 0);
      const specs = series(rng, { signed });
      const dir = await folder(asFiles(rng, specs).files);
      const lines: string[] = [];
      const vol = await loadDicomSeries(dir, (l) => lines.push(l));
      expect(lines).toEqual([]);
      expectHu(vol, specs);
      expect(vol.dtype).toBe(signed ? 'int16' : 'uint16');
      expect(vol.name).toBe(dir);
      vol.spacing.forEach((x, a) => expect(x).toBeCloseTo([1.25, 0.7, 0.9][a]!, 9));
      expect(vol.affine.length).toBe(16);
      // Axial: slices step along +z, rows along +y, columns along +x.
      const want = [0, 0, 0.9, -120.5, 0, 0.7, 0, -80.25, 1.25, 0, 0, 33, 0, 0, 0, 1];
      vol.affine.forEach((x, i) => expect(x).toBeCloseTo(want[i]!, 9));
    });
  }

  it('an oblique series is ordered along row × column (here z decreases) with the gap measured along the normal', async () => {
    const rng = Rng.fromKeys(2);
    const specs = series(rng, { orientation: OBLIQUE, gap: 2.5, origin: [10.5, -3.25, 40], n: 6 });
    // Sorting by z (or by the first coordinate) would reverse this stack.
    expect(specs[1]!.position[2]!).toBeLessThan(specs[0]!.position[2]!);
    expect(specs[1]!.position[0]!).toBeLessThan(specs[0]!.position[0]!);
    const vol = await loadDicomSeries(await folder(asFiles(rng, specs).files));
    expectHu(vol, specs);
    expect(vol.spacing[0]).toBeCloseTo(2.5, 9);
    expect(vol.spacing[1]).toBeCloseTo(0.7, 9);
    expect(vol.spacing[2]).toBeCloseTo(0.9, 9);
  });

  it('the affine maps voxel (i, j, k) to the world point DICOM gives row j, column k of slice i', async () => {
    const rng = Rng.fromKeys(3);
    const specs = series(rng, { orientation: OBLIQUE, gap: 3, origin: [-7.5, 12.25, -100], pixelSpacing: [0.5, 0.8] });
    const vol = await loadDicomSeries(await folder(asFiles(rng, specs).files));
    const A = vol.affine;
    const [rowDir, colDir] = [OBLIQUE.slice(0, 3), OBLIQUE.slice(3, 6)];
    const [dr, dc] = [0.5, 0.8];
    for (const [i, j, k] of [[0, 0, 0], [4, 6, 8], [2, 1, 7], [1, 5, 0], [3, 0, 3]] as const) {
      // PS3.3 C.7.6.2.1.1: P = S + X·Δcolumn·c + Y·Δrow·r, with X the row and Y the column cosine.
      const want = [0, 1, 2].map((a) => specs[i]!.position[a]! + rowDir[a]! * dc * k + colDir[a]! * dr * j);
      const got = [0, 1, 2].map((a) => A[a * 4]! * i + A[a * 4 + 1]! * j + A[a * 4 + 2]! * k + A[a * 4 + 3]!);
      got.forEach((x, a) => expect(x).toBeCloseTo(want[a]!, 9));
    }
    expect(A.slice(12)).toEqual([0, 0, 0, 1]);
  });

  it('skips truncated, non-DICOM, compressed and DICOMDIR files with a line naming each, and loads the rest', async () => {
    const rng = Rng.fromKeys(4);
    const specs = series(rng);
    const { files } = asFiles(rng, specs);
    const whole = writeCtSlice(specs[2]!);
    const dir = await folder({
      ...files,
      cut: whole.subarray(0, whole.length - 40), // inside the pixel data
      cutHeader: whole.subarray(0, 300),
      'notes.txt': 'not a DICOM file at all, just some words that run past byte 132 of the file '.repeat(3),
      tiny: 'DICM',
      jpeg: writeCtSlice({ ...specs[1]!, transferSyntax: TS.jpegBaseline }),
      DICOMDIR: writeCtSlice(specs[0]!),
    });
    await mkdir(join(dir, 'subfolder'));
    const lines: string[] = [];
    const vol = await loadDicomSeries(dir, (l) => lines.push(l));
    expectHu(vol, specs);
    const line = (name: string) => lines.filter((l) => l.startsWith(`skipping ${join(dir, name)}: `));
    expect(line('notes.txt')).toEqual([`skipping ${join(dir, 'notes.txt')}: not a DICOM file`]);
    expect(line('tiny')).toEqual([`skipping ${join(dir, 'tiny')}: not a DICOM file`]);
    expect(line('cut')).toHaveLength(1);
    expect(line('cut')[0]).toMatch(/truncated/);
    expect(line('cutHeader')).toHaveLength(1);
    expect(line('cutHeader')[0]).toMatch(/truncated|no pixel data/);
    expect(line('jpeg')).toHaveLength(1);
    expect(line('jpeg')[0]).toContain('1.2.840.10008.1.2.4.50');
    expect(line('DICOMDIR')).toHaveLength(1);
    expect(lines).toHaveLength(6);
  });

  it('two series in one folder: an error naming the folder and both UIDs with their slice counts', async () => {
    const rng = Rng.fromKeys(5);
    const a = asFiles(rng, series(rng, { uid: '2.25.7001', n: 3 })).files;
    const b = asFiles(rng, series(rng, { uid: '2.25.7002', n: 4, origin: [0, 0, 300] })).files;
    const dir = await folder({ ...a, ...b });
    const e = await errorOf(() => loadDicomSeries(dir));
    expect(e.message).toContain(dir);
    expect(e.message).toContain('2.25.7001 (3 slices)');
    expect(e.message).toContain('2.25.7002 (4 slices)');
    expect(e.message).toMatch(/one series per folder/);
  });

  it('a duplicated slice position is an error naming both files', async () => {
    const rng = Rng.fromKeys(6);
    const specs = series(rng);
    const dir = await folder({ ...asFiles(rng, specs).files, again: writeCtSlice({ ...specs[3]!, instanceNumber: 99 }) });
    const e = await errorOf(() => loadDicomSeries(dir));
    expect(e.message).toContain(join(dir, 'again'));
    expect(e.message).toMatch(/share the slice position/);
  });

  it('uneven slice gaps (a missing slice) are an error saying where', async () => {
    const rng = Rng.fromKeys(7);
    const specs = series(rng, { n: 6 });
    const dir = await folder(asFiles(rng, specs.filter((_, s) => s !== 3)).files);
    const e = await errorOf(() => loadDicomSeries(dir));
    expect(e.message).toContain(dir);
    expect(e.message).toMatch(/uneven slice spacing: 2\.5 mm between .* median gap is 1\.25 mm/);
  });

  it('slices of different sizes, orientations or pixel spacings are an error naming the folder', async () => {
    const rng = Rng.fromKeys(8);
    const specs = series(rng, { n: 3 });
    const variants: [Partial<CtSliceSpec>, RegExp][] = [
      [{ rows: 9, columns: 7 }, /slice sizes differ/],
      [{ orientation: [0, 1, 0, 1, 0, 0] }, /orientations differ/],
      [{ pixelSpacing: [0.7, 0.8] }, /pixel spacings differ/],
    ];
    for (const [change, msg] of variants) {
      const odd = { ...specs[1]!, ...change };
      const dir = await folder({ a: writeCtSlice(specs[0]!), b: writeCtSlice(odd), c: writeCtSlice(specs[2]!) });
      const e = await errorOf(() => loadDicomSeries(dir));
      expect(e.message.startsWith(`${dir}: `)).toBe(true);
      expect(e.message).toMatch(msg);
    }
  });

  it('fewer than two usable slices, or none, is an error', async () => {
    const rng = Rng.fromKeys(9);
    const one = await folder({ only: writeCtSlice(series(rng, { n: 1 })[0]!), junk: 'x'.repeat(200) });
    expect((await errorOf(() => loadDicomSeries(one))).message).toMatch(/1 usable slice; a volume needs at least 2/);
    const none = await folder({ junk: 'x'.repeat(200) });
    expect((await errorOf(() => loadDicomSeries(none))).message).toMatch(/no usable DICOM slices \(1 file skipped\)/);
    expect((await errorOf(() => loadDicomSeries(join(root, 'missing')))).message).toMatch(/cannot list the folder/);
  });

  it('isDicomFolder: true with one DICM file, false for DICOMDIR-only, non-DICOM or missing folders', async () => {
    const rng = Rng.fromKeys(10);
    const slice = writeCtSlice(series(rng, { n: 1 })[0]!);
    expect(await isDicomFolder(await folder({ 'a.txt': 'hello', IM0001: slice }))).toBe(true);
    expect(await isDicomFolder(await folder({ DICOMDIR: slice, 'a.txt': 'hello' }))).toBe(false);
    expect(await isDicomFolder(await folder({ 'ct.nii': new Uint8Array(400) }))).toBe(false);
    expect(await isDicomFolder(join(root, 'missing'))).toBe(false);
  });
});

describe('decodeDicomSlice', () => {
  const base = (rng: Rng, over: Partial<CtSliceSpec> = {}): CtSliceSpec => ({ ...series(rng, { n: 1 })[0]!, ...over });

  it('8- and 16-bit words, signed and unsigned, and BitsStored 12 with junk in the unused high bits', () => {
    const rng = Rng.fromKeys(11);
    const cases: [Partial<CtSliceSpec>, lo: number, hi: number, string][] = [
      [{ bitsAllocated: 16, pixelRepresentation: 0 }, 0, 65535, 'uint16'],
      [{ bitsAllocated: 16, pixelRepresentation: 1 }, -32768, 32767, 'int16'],
      [{ bitsAllocated: 8, pixelRepresentation: 0 }, 0, 255, 'uint8'],
      [{ bitsAllocated: 8, pixelRepresentation: 1 }, -128, 127, 'int8'],
      [{ bitsAllocated: 16, bitsStored: 12, pixelRepresentation: 0, junkHighBits: true }, 0, 4095, 'uint16'],
      [{ bitsAllocated: 16, bitsStored: 12, pixelRepresentation: 1, junkHighBits: true }, -2048, 2047, 'int16'],
    ];
    for (const [over, lo, hi, dtype] of cases) {
      const spec = base(rng, { ...over, slope: 1.5, intercept: -1000.25 });
      // Both ends of the range and the sign boundary, then random values.
      const edges = [lo, hi, lo + 1, hi - 1, -1, 0].filter((x) => x >= lo);
      spec.pixels = Int32Array.from({ length: spec.rows * spec.columns }, (_, i) => edges[i] ?? lo + rng.int(hi - lo + 1));
      const s = decodeDicomSlice(writeCtSlice(spec), 'x.dcm');
      expect(s.dtype).toBe(dtype);
      expect(Array.from(s.pixels)).toEqual(Array.from(spec.pixels, (v) => Math.fround(v * 1.5 - 1000.25)));
    }
  });

  it('reads the geometry, rescale and series fields', () => {
    const spec = base(Rng.fromKeys(12), { orientation: OBLIQUE, position: [1.5, -2.25, 3], pixelSpacing: [0.5, 0.75], sliceThickness: 2, instanceNumber: 17 });
    const s = decodeDicomSlice(writeCtSlice(spec), 'x.dcm');
    expect(s).toMatchObject({
      name: 'x.dcm', rows: 7, columns: 9, pixelSpacing: [0.5, 0.75], imagePosition: [1.5, -2.25, 3], imageOrientation: OBLIQUE,
      sliceThickness: 2, instanceNumber: 17, rescaleSlope: 2, rescaleIntercept: -1024, seriesInstanceUid: '2.25.111',
    });
  });

  it('Implicit VR, Deflated and Explicit VR Big Endian give the same slice as Explicit VR Little Endian', () => {
    const spec = base(Rng.fromKeys(13));
    const want = decodeDicomSlice(writeCtSlice(spec), 'le.dcm');
    for (const ts of [TS.implicitLE, TS.deflatedLE, TS.explicitBE]) {
      const got = decodeDicomSlice(writeCtSlice({ ...spec, transferSyntax: ts }), ts);
      expect({ ...got, name: 'le.dcm' }).toEqual(want);
    }
    // A view at an odd offset into a larger buffer (as a pooled Node Buffer may be) can't take a typed view.
    const bytes = writeCtSlice(spec);
    const big = new Uint8Array(bytes.length + 3);
    big.set(bytes, 1);
    expect(decodeDicomSlice(big.subarray(1, 1 + bytes.length), 'le.dcm')).toEqual(want);
  });

  it('a compressed transfer syntax is rejected naming it', () => {
    const e = (() => {
      try {
        decodeDicomSlice(writeCtSlice(base(Rng.fromKeys(14), { transferSyntax: TS.jpegBaseline })), 'j.dcm');
      } catch (err) {
        return err as Error;
      }
      throw new Error('expected an error');
    })();
    expect(e).toBeInstanceOf(DicomError);
    expect(e.message).toMatch(/^j\.dcm: transfer syntax 1\.2\.840\.10008\.1\.2\.4\.50 \(JPEG Baseline\) is not supported/);
  });

  it('clear errors for non-DICOM bytes, missing pixel data or geometry, and colour images', () => {
    const rng = Rng.fromKeys(15);
    const msg = (bytes: Uint8Array) => {
      try {
        decodeDicomSlice(bytes, 'f.dcm');
      } catch (e) {
        expect(e).toBeInstanceOf(DicomError);
        return (e as Error).message;
      }
      throw new Error('expected an error');
    };
    expect(msg(new Uint8Array(10))).toMatch(/^f\.dcm: not a DICOM file/);
    expect(msg(new Uint8Array(1000))).toMatch(/^f\.dcm: not a DICOM file \(no 'DICM' at byte 128\)/);
    expect(msg(writeCtSlice(base(rng, { omit: ['PixelData'] })))).toBe('f.dcm: no pixel data (7FE0,0010)');
    for (const [tag, what] of [['ImagePositionPatient', '0020,0032'], ['ImageOrientationPatient', '0020,0037'], ['PixelSpacing', '0028,0030']]) {
      expect(msg(writeCtSlice(base(rng, { omit: [tag!] })))).toBe(`f.dcm: missing geometry: no ${tag} (${what})`);
    }
    expect(msg(writeCtSlice(base(rng, { samplesPerPixel: 3 })))).toMatch(/SamplesPerPixel \(0028,0002\) is 3/);
    expect(msg(writeCtSlice(base(rng, { omit: ['SeriesInstanceUID'] })))).toMatch(/no SeriesInstanceUID/);
    expect(msg(writeCtSlice(base(rng, { orientation: [1, 0, 0, 0.5, 0.5, 0] })))).toMatch(/not two orthogonal unit vectors/);
  });

  it('a file cut at any byte is a DicomError naming the file, never a crash or a silent success', () => {
    const whole = writeCtSlice(base(Rng.fromKeys(16)));
    for (let n = 0; n < whole.length; n++) {
      let err: unknown = null;
      try {
        decodeDicomSlice(whole.subarray(0, n), 'cut.dcm');
      } catch (e) {
        err = e;
      }
      expect(err, `cut at ${n}`).toBeInstanceOf(DicomError);
      expect((err as Error).message.startsWith('cut.dcm: ')).toBe(true);
    }
  });
});

describe('assembleSeries', () => {
  it('rejects slices of two series and single slices, naming the folder', () => {
    const rng = Rng.fromKeys(17);
    const slices = series(rng, { n: 3 }).map((sp, i) => decodeDicomSlice(writeCtSlice({ ...sp, seriesUid: i === 2 ? '2.25.9' : sp.seriesUid }), `f${i}`));
    expect(() => assembleSeries(slices, 'dir')).toThrow(/^dir: slices of different series: f0 is in 2\.25\.111, f2 in 2\.25\.9/);
    expect(() => assembleSeries(slices.slice(0, 1), 'dir')).toThrow(/^dir: 1 usable slice/);
    const vol = assembleSeries(slices.slice(0, 2).reverse(), 'dir');
    expect(vol.shape).toEqual([2, 7, 9]);
    expect(vol.data.subarray(0, 63)).toEqual(slices[0]!.pixels);
  });
});
