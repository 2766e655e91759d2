/**
 * DICOM CT series decoded on the host: one file per slice, values in HU (stored × RescaleSlope +
 * RescaleIntercept, computed in f64 and rounded once to f32), slices stacked by their position
 * along the slice normal. Host-agnostic: the Node folder reader is dicom-folder.ts.
 *
 * dicom-parser (cornerstone) walks the element structure; pixel decoding and geometry are done
 * here, because the library leaves both to its callers. Only uncompressed pixel data is read
 * (Implicit/Explicit VR Little Endian, Deflated Explicit VR Little Endian, Explicit VR Big
 * Endian): JPEG, JPEG-LS, JPEG 2000, HTJ2K and RLE slices are rejected with their transfer syntax
 * named, rather than pulling in a codec per format.
 *
 * Layout of an assembled series, (D, H, W) = (slice, row, column):
 *   axis 0 steps from slice to slice along the normal row × column direction cosines,
 *   axis 1 is the DICOM row index: it moves along the column direction cosine, by PixelSpacing[0],
 *   axis 2 is the column index: it moves along the row direction cosine, by PixelSpacing[1],
 * so each slice's pixel data (stored row by row) is copied as one contiguous block.
 */
import * as dicomParserNs from 'dicom-parser';
import type { DataSet, ParseDicomOptions } from 'dicom-parser';
import { inflateSync } from 'fflate';
import { ReefError } from '../gpu/errors.js';
import type { Volume } from './nifti.js';

// A webpack UMD bundle: Node's ESM loader exposes its exports only under `default`, while bundlers
// may spread them onto the namespace, so take whichever object actually carries the functions.
const dicomParser: typeof dicomParserNs =
  typeof dicomParserNs.parseDicom === 'function' ? dicomParserNs : (dicomParserNs as unknown as { default: typeof dicomParserNs }).default;

export class DicomError extends ReefError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DicomError';
  }
}

/** One decoded CT slice. Geometry is as stored (DICOM patient coordinates, LPS, in mm). */
export interface DicomSlice {
  /** The file it came from, for messages. */
  name: string;
  rows: number;
  columns: number;
  /** [between rows, between columns] in mm, as (0028,0030) orders them. */
  pixelSpacing: [number, number];
  /** World position of the centre of the first transmitted pixel (row 0, column 0). */
  imagePosition: [number, number, number];
  /** Row direction cosine (moves with the column index) then column direction cosine (moves with the row index). */
  imageOrientation: [number, number, number, number, number, number];
  sliceThickness?: number;
  /** Informational only: slices are ordered by position, never by this. */
  instanceNumber?: number;
  rescaleSlope: number;
  rescaleIntercept: number;
  seriesInstanceUid: string;
  /** Stored representation, e.g. 'int16', 'uint16'. */
  dtype: string;
  /** rows × columns values in HU, row-major (`pixels[r*columns + c]`). */
  pixels: Float32Array;
}

/** Transfer syntaxes whose pixel data is stored as plain words. */
const NATIVE: ReadonlyMap<string, { name: string; littleEndian: boolean; deflated: boolean }> = new Map([
  ['1.2.840.10008.1.2', { name: 'Implicit VR Little Endian', littleEndian: true, deflated: false }],
  ['1.2.840.10008.1.2.1', { name: 'Explicit VR Little Endian', littleEndian: true, deflated: false }],
  ['1.2.840.10008.1.2.1.99', { name: 'Deflated Explicit VR Little Endian', littleEndian: true, deflated: true }],
  ['1.2.840.10008.1.2.2', { name: 'Explicit VR Big Endian', littleEndian: false, deflated: false }],
]);
/** Named only so the rejection says what the file holds. */
const COMPRESSED: Record<string, string> = {
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless SV1',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Near-Lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Lossless',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.4.92': 'JPEG 2000 Part 2 Lossless',
  '1.2.840.10008.1.2.4.93': 'JPEG 2000 Part 2',
  '1.2.840.10008.1.2.4.201': 'HTJ2K Lossless',
  '1.2.840.10008.1.2.4.202': 'HTJ2K Lossless RPCL',
  '1.2.840.10008.1.2.4.203': 'HTJ2K',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
};

/** True when the Part 10 magic 'DICM' sits at byte 128 (after the preamble); needs only the first 132 bytes. */
export function hasDicomMagic(bytes: Uint8Array): boolean {
  return bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d;
}

/** dicom-parser throws strings, Errors, or `{ exception, dataSet }`; this finds the words. */
function libMessage(e: unknown): string {
  if (typeof e === 'string') return e;
  if (e instanceof Error) return e.message;
  if (e !== null && typeof e === 'object' && 'exception' in e) return libMessage((e as { exception: unknown }).exception);
  return String(e);
}

/** The library's own inflater needs a Node Buffer or a global `pako`; fflate works on every host. */
const inflater = (bytes: Uint8Array, position: number): Uint8Array => {
  const inflated = inflateSync(bytes.subarray(position));
  const full = new Uint8Array(position + inflated.length);
  full.set(bytes.subarray(0, position));
  full.set(inflated, position);
  return full;
};

/**
 * Decodes one single-frame CT slice held in memory; `name` (the file) starts every error message.
 *
 * Pixel values: BitsAllocated 8, 16 or 32 words in the transfer syntax's byte order; when BitsStored
 * is less than BitsAllocated only bits [HighBit − BitsStored + 1, HighBit] are the value (PS3.5 §8:
 * the others are masked off), and for PixelRepresentation 1 it is sign-extended from BitsStored bits.
 * Missing RescaleSlope/Intercept mean 1 and 0.
 */
export function decodeDicomSlice(bytes: Uint8Array, name: string): DicomSlice {
  const fail = (msg: string): never => {
    throw new DicomError(`${name}: ${msg}`);
  };
  try {
    return decode(bytes, name, fail);
  } catch (e) {
    if (e instanceof DicomError) throw e;
    // A RangeError or library error on a malformed file: still say which file.
    throw new DicomError(`${name}: not a readable DICOM file (${libMessage(e)})`, { cause: e });
  }
}

function decode(bytes: Uint8Array, name: string, fail: (msg: string) => never): DicomSlice {
  if (!hasDicomMagic(bytes)) {
    fail(bytes.length < 132 ? `not a DICOM file (${bytes.length} bytes, too short for the 128-byte preamble and 'DICM')` : "not a DICOM file (no 'DICM' at byte 128)");
  }
  // The meta header first, so an unsupported syntax is named even if the rest would not parse.
  let meta: DataSet;
  try {
    meta = dicomParser.readPart10Header(bytes) as DataSet;
  } catch (e) {
    return fail(`truncated or corrupt file meta header (${libMessage(e)})`);
  }
  const ts = meta.string('x00020010');
  if (!ts) fail('the file meta header has no TransferSyntaxUID (0002,0010)');
  const syntax = NATIVE.get(ts!);
  if (!syntax) {
    const what = COMPRESSED[ts!];
    fail(
      `transfer syntax ${ts}${what ? ` (${what})` : ''} is not supported: reef reads uncompressed DICOM only ` +
        `(${[...NATIVE.values()].map((s) => s.name).join(', ')}); decompress the series first, e.g. \`gdcmconv --raw\` or DCMTK's \`dcmdjpeg\``,
    );
  }

  let ds: DataSet;
  try {
    const options: ParseDicomOptions = syntax!.deflated ? { inflater } : {};
    ds = dicomParser.parseDicom(bytes, options);
  } catch (e) {
    return fail(`truncated or corrupt DICOM data (${libMessage(e)})`);
  }

  const frames = ds.intString('x00280008');
  if (frames !== undefined && frames > 1) fail(`multi-frame image (NumberOfFrames ${frames}); only one slice per file is supported`);
  const spp = ds.uint16('x00280002') ?? 1;
  if (spp !== 1) fail(`SamplesPerPixel (0028,0002) is ${spp}; CT slices have 1 (greyscale)`);
  const photometric = ds.string('x00280004');
  if (photometric !== undefined && photometric !== 'MONOCHROME2' && photometric !== 'MONOCHROME1') {
    fail(`PhotometricInterpretation (0028,0004) is ${photometric}; only MONOCHROME1/2 are greyscale`);
  }

  const rows = ds.uint16('x00280010');
  const columns = ds.uint16('x00280011');
  if (!rows || !columns) fail(`missing or zero Rows/Columns (0028,0010/0011): ${rows ?? 'absent'} × ${columns ?? 'absent'}`);
  const bits = ds.uint16('x00280100');
  if (bits !== 8 && bits !== 16 && bits !== 32) fail(`BitsAllocated (0028,0100) is ${bits ?? 'absent'}; supported: 8, 16, 32`);
  const stored = ds.uint16('x00280101') ?? bits!;
  const highBit = ds.uint16('x00280102') ?? stored - 1;
  if (!(stored >= 1 && stored <= bits! && highBit >= stored - 1 && highBit < bits!)) {
    fail(`inconsistent BitsAllocated ${bits}, BitsStored ${stored}, HighBit ${highBit}`);
  }
  const rep = ds.uint16('x00280103') ?? 0;
  if (rep !== 0 && rep !== 1) fail(`PixelRepresentation (0028,0103) is ${rep}; expected 0 (unsigned) or 1 (signed)`);

  const px = ds.elements['x7fe00010'];
  if (!px) {
    const float = ds.elements['x7fe00008'] || ds.elements['x7fe00009'];
    fail(float ? 'float pixel data (7FE0,0008/0009) is not supported; expected integer PixelData (7FE0,0010)' : 'no pixel data (7FE0,0010)');
  }
  if (px!.encapsulatedPixelData || px!.hadUndefinedLength) fail(`encapsulated (compressed) pixel data under transfer syntax ${ts}; only native pixel data is supported`);
  const count = rows! * columns!;
  const need = (count * bits!) / 8;
  if (px!.length < need || px!.dataOffset + need > ds.byteArray.length) {
    fail(`truncated pixel data: ${Math.min(px!.length, ds.byteArray.length - px!.dataOffset)} bytes, but ${rows}×${columns} ${bits}-bit pixels need ${need}`);
  }

  const nums = (tag: string, n: number, what: string): number[] => {
    const el = ds.elements[tag];
    if (!el || el.length === 0) fail(`missing geometry: no ${what}`);
    const v = Array.from({ length: n }, (_, i) => ds.floatString(tag, i) ?? NaN);
    if (!v.every(Number.isFinite)) fail(`bad ${what}: expected ${n} numbers, got ${JSON.stringify(ds.string(tag) ?? '')}`);
    return v;
  };
  const position = nums('x00200032', 3, 'ImagePositionPatient (0020,0032)') as DicomSlice['imagePosition'];
  const orientation = nums('x00200037', 6, 'ImageOrientationPatient (0020,0037)') as DicomSlice['imageOrientation'];
  const spacing = nums('x00280030', 2, 'PixelSpacing (0028,0030)') as DicomSlice['pixelSpacing'];
  if (!(spacing[0] > 0 && spacing[1] > 0)) fail(`PixelSpacing (0028,0030) must be positive, got ${spacing.join('\\')}`);
  const [rowDir, colDir] = [orientation.slice(0, 3), orientation.slice(3, 6)];
  // The standard says unit and orthogonal; a wrong pair would make the slice normal meaningless.
  if (Math.abs(norm(rowDir) - 1) > 1e-3 || Math.abs(norm(colDir) - 1) > 1e-3 || Math.abs(dot(rowDir, colDir)) > 1e-3) {
    fail(`ImageOrientationPatient (0020,0037) ${orientation.join('\\')} is not two orthogonal unit vectors`);
  }

  const slope = ds.floatString('x00281053') ?? 1;
  const intercept = ds.floatString('x00281052') ?? 0;
  if (!Number.isFinite(slope) || slope === 0 || !Number.isFinite(intercept)) fail(`bad RescaleSlope ${slope} / RescaleIntercept ${intercept}`);
  const seriesInstanceUid = ds.string('x0020000e');
  if (!seriesInstanceUid) fail('no SeriesInstanceUID (0020,000E)');
  const thickness = ds.floatString('x00180050');
  const instance = ds.intString('x00200013');

  const signed = rep === 1;
  const buf = ds.byteArray;
  const view = new DataView(buf.buffer, buf.byteOffset + px!.dataOffset, need);
  const pixels = readPixels(view, count, bits!, stored, highBit, signed, syntax!.littleEndian, slope, intercept);
  return {
    name,
    rows: rows!,
    columns: columns!,
    pixelSpacing: spacing,
    imagePosition: position,
    imageOrientation: orientation,
    ...(thickness !== undefined && Number.isFinite(thickness) ? { sliceThickness: thickness } : {}),
    ...(instance !== undefined && Number.isFinite(instance) ? { instanceNumber: instance } : {}),
    rescaleSlope: slope,
    rescaleIntercept: intercept,
    seriesInstanceUid: seriesInstanceUid!,
    dtype: `${signed ? 'int' : 'uint'}${bits}`,
    pixels,
  };
}

const HOST_LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Stored words → HU, in f64 with one rounding to f32 (so the result does not depend on the read path). */
function readPixels(
  v: DataView, count: number, bits: 8 | 16 | 32, stored: number, highBit: number, signed: boolean, le: boolean, slope: number, intercept: number,
): Float32Array {
  const out = new Float32Array(count);
  if (stored === bits && le === HOST_LITTLE && v.byteOffset % (bits / 8) === 0) {
    // The common case, read through a typed view: several times faster than DataView calls.
    const [b, o] = [v.buffer, v.byteOffset];
    const src =
      bits === 8 ? (signed ? new Int8Array(b, o, count) : new Uint8Array(b, o, count))
      : bits === 16 ? (signed ? new Int16Array(b, o, count) : new Uint16Array(b, o, count))
      : signed ? new Int32Array(b, o, count) : new Uint32Array(b, o, count);
    for (let i = 0; i < count; i++) out[i] = src[i]! * slope + intercept;
    return out;
  }
  if (stored === bits) {
    // BitsStored = BitsAllocated: the word is the value.
    const read =
      bits === 8 ? (signed ? (i: number) => v.getInt8(i) : (i: number) => v.getUint8(i))
      : bits === 16 ? (signed ? (i: number) => v.getInt16(2 * i, le) : (i: number) => v.getUint16(2 * i, le))
      : signed ? (i: number) => v.getInt32(4 * i, le) : (i: number) => v.getUint32(4 * i, le);
    for (let i = 0; i < count; i++) out[i] = read(i) * slope + intercept;
    return out;
  }
  // Bits outside the stored field may hold junk (old overlay planes), so mask them off.
  const shift = highBit + 1 - stored;
  const mask = 2 ** stored - 1; // stored < bits ≤ 32, so this fits an int32 mask
  const half = 2 ** (stored - 1);
  const full = 2 ** stored;
  const word = bits === 8 ? (i: number) => v.getUint8(i) : bits === 16 ? (i: number) => v.getUint16(2 * i, le) : (i: number) => v.getUint32(4 * i, le);
  for (let i = 0; i < count; i++) {
    let x = (word(i) >>> shift) & mask;
    if (signed && x >= half) x -= full;
    out[i] = x * slope + intercept;
  }
  return out;
}

/**
 * Stacks the slices of one series into a Volume, ordered by ImagePositionPatient projected on the
 * slice normal (never by file name or InstanceNumber, which scanners and anonymisers reorder).
 * `name` (the folder) starts every error message.
 *
 * shape = [slices, rows, columns], spacing = [median slice gap, PixelSpacing[0], PixelSpacing[1]].
 * The affine (4×4 row-major, voxel (i, j, k) → world) has columns: the mean step between
 * consecutive slice positions (equal to normal × gap, except for a gantry-tilted series where it is
 * sheared and longer than the gap), columnDir × PixelSpacing[0], rowDir × PixelSpacing[1], and the
 * first slice's ImagePositionPatient. World is DICOM patient space, LPS (NIfTI's is RAS: x and y
 * negated); reef's crops use only `spacing`, so the affine is informational. `dtype` is the slices'
 * stored type, or the distinct ones joined with '/' when a series mixes them.
 */
export function assembleSeries(slices: readonly DicomSlice[], name: string): Volume {
  const fail = (msg: string): never => {
    throw new DicomError(`${name}: ${msg}`);
  };
  if (slices.length < 2) fail(`${slices.length} usable slice${slices.length === 1 ? '' : 's'}; a volume needs at least 2`);
  const first = slices[0]!;
  const { rows, columns } = first;
  for (const s of slices) {
    if (s.seriesInstanceUid !== first.seriesInstanceUid) {
      fail(`slices of different series: ${first.name} is in ${first.seriesInstanceUid}, ${s.name} in ${s.seriesInstanceUid}; keep one series per folder`);
    }
    if (s.rows !== rows || s.columns !== columns) fail(`slice sizes differ: ${first.name} is ${rows}×${columns}, ${s.name} is ${s.rows}×${s.columns}`);
    // Cosines are written with a few decimals; 1e-4 allows rounding but not a localizer or a re-angled stack.
    if (s.imageOrientation.some((c, i) => Math.abs(c - first.imageOrientation[i]!) > 1e-4)) {
      fail(`slice orientations differ: ${first.name} has ${first.imageOrientation.join('\\')}, ${s.name} has ${s.imageOrientation.join('\\')}`);
    }
    if (s.pixelSpacing.some((p, i) => Math.abs(p - first.pixelSpacing[i]!) > 1e-4 * first.pixelSpacing[i]!)) {
      fail(`pixel spacings differ: ${first.name} has ${first.pixelSpacing.join('\\')}, ${s.name} has ${s.pixelSpacing.join('\\')}`);
    }
  }

  const rowDir = unit(first.imageOrientation.slice(0, 3));
  const colDir = unit(first.imageOrientation.slice(3, 6));
  const normal = unit(cross(rowDir, colDir));
  const sorted = slices.map((s) => ({ s, at: dot(s.imagePosition, normal) })).sort((a, b) => a.at - b.at);
  const gaps = sorted.slice(1).map((b, i) => b.at - sorted[i]!.at);
  gaps.forEach((g, i) => {
    // 1 µm: DS strings carry far more precision than that, so anything closer is the same place.
    if (g < 1e-3) fail(`${sorted[i]!.s.name} and ${sorted[i + 1]!.s.name} share the slice position ${fmt(sorted[i]!.at)} mm along the normal (duplicate slice, or two stacks in one series)`);
  });
  const gap = median(gaps);
  gaps.forEach((g, i) => {
    if (Math.abs(g - gap) > 0.01 * gap) {
      fail(
        `uneven slice spacing: ${fmt(g)} mm between ${sorted[i]!.s.name} and ${sorted[i + 1]!.s.name}, but the median gap is ${fmt(gap)} mm ` +
          '(a missing slice, or overlapping stacks?)',
      );
    }
  });

  const n = sorted.length;
  const plane = rows * columns;
  const data = new Float32Array(n * plane);
  sorted.forEach(({ s }, i) => data.set(s.pixels, i * plane));

  const o = sorted[0]!.s.imagePosition;
  const last = sorted[n - 1]!.s.imagePosition;
  // The mean step rather than the first one: exact at both ends, and less sensitive to rounded positions.
  const step = [0, 1, 2].map((a) => (last[a]! - o[a]!) / (n - 1));
  const [dr, dc] = first.pixelSpacing;
  const affine = [0, 1, 2].flatMap((a) => [step[a]!, colDir[a]! * dr, rowDir[a]! * dc, o[a]!]).concat([0, 0, 0, 1]);
  const dtypes = [...new Set(slices.map((s) => s.dtype))];
  return { data, shape: [n, rows, columns], spacing: [gap, dr, dc], affine, dtype: dtypes.join('/'), name };
}

const dot = (a: readonly number[], b: readonly number[]): number => a[0]! * b[0]! + a[1]! * b[1]! + a[2]! * b[2]!;
const norm = (a: readonly number[]): number => Math.hypot(a[0]!, a[1]!, a[2]!);
const unit = (a: readonly number[]): number[] => {
  const l = norm(a);
  return [a[0]! / l, a[1]! / l, a[2]! / l];
};
const cross = (a: readonly number[], b: readonly number[]): number[] => [
  a[1]! * b[2]! - a[2]! * b[1]!,
  a[2]! * b[0]! - a[0]! * b[2]!,
  a[0]! * b[1]! - a[1]! * b[0]!,
];
function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
const fmt = (x: number): string => String(Number(x.toPrecision(6)));
