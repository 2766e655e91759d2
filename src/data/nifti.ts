/**
 * NIfTI-1/NIfTI-2 volumes (`.nii`, `.nii.gz`) decoded on the host, with the semantics of MONAI's
 * `LoadImage` (nibabel reader) + `EnsureChannelFirst`: array index (i, j, k) becomes tensor axes
 * (D, H, W) with no reorientation, header scaling applied, values as f32.
 *
 * nifti-reader-js parses the header fields (both versions, either byte order) and inflates gzip.
 * The rest is done here on purpose: its affine choice differs from nibabel's, its NIfTI-2 int64
 * reader mis-signs negative values, its readImage trusts bitpix and never checks lengths, and
 * fflate (its inflater) does not verify the gzip CRC. Checked bit-for-bit against nibabel 5.4.
 */
import { NIFTI1, NIFTI2 } from 'nifti-reader-js';
import { ReefError } from '../gpu/errors.js';
import { applyWindow } from './augment.js';
import { gunzipChecked, isGzip } from './gzip.js';

export interface Volume {
  /** Row-major (D, H, W) = (i, j, k): `data[(i*nj + j)*nk + k]` is voxel (i, j, k). */
  data: Float32Array;
  shape: [number, number, number];
  /** Voxel size along (i, j, k): column norms of the affine, as MONAI's `MetaTensor.pixdim`. */
  spacing: [number, number, number];
  /** 4×4 row-major voxel→world matrix: nibabel's `get_best_affine` as corrected by MONAI (see bestAffine). */
  affine: number[];
  /** Source datatype name, e.g. 'int16'. */
  dtype: string;
  name: string;
}

export class NiftiError extends ReefError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NiftiError';
  }
}

type Typed = Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;
interface DType {
  name: string;
  bytes: number;
  view: (b: ArrayBuffer, byteOffset: number, length: number) => Typed;
}
const DTYPES: ReadonlyMap<number, DType> = new Map<number, DType>([
  [2, { name: 'uint8', bytes: 1, view: (b, o, n) => new Uint8Array(b, o, n) }],
  [4, { name: 'int16', bytes: 2, view: (b, o, n) => new Int16Array(b, o, n) }],
  [8, { name: 'int32', bytes: 4, view: (b, o, n) => new Int32Array(b, o, n) }],
  [16, { name: 'float32', bytes: 4, view: (b, o, n) => new Float32Array(b, o, n) }],
  [64, { name: 'float64', bytes: 8, view: (b, o, n) => new Float64Array(b, o, n) }],
  [256, { name: 'int8', bytes: 1, view: (b, o, n) => new Int8Array(b, o, n) }],
  [512, { name: 'uint16', bytes: 2, view: (b, o, n) => new Uint16Array(b, o, n) }],
  [768, { name: 'uint32', bytes: 4, view: (b, o, n) => new Uint32Array(b, o, n) }],
]);
/** Named only so the rejection says what the file holds. */
const UNSUPPORTED: Record<number, string> = {
  1: 'binary', 32: 'complex64', 128: 'RGB24', 1024: 'int64', 1280: 'uint64', 1536: 'float128',
  1792: 'complex128', 2048: 'complex256', 2304: 'RGBA32',
};

const HOST_LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Decodes a whole `.nii` or `.nii.gz` file held in memory; `name` is used in every error. */
export function decodeNifti(bytes: Uint8Array, name: string): Volume {
  const fail = (msg: string): never => {
    throw new NiftiError(`${name}: ${msg}`);
  };
  try {
    let raw = bytes;
    if (isGzip(bytes)) {
      try {
        raw = gunzipChecked(bytes, name);
      } catch (e) {
        throw new NiftiError((e as Error).message, { cause: e }); // already names the file
      }
    }
    return decode(exactBuffer(raw), name, fail);
  } catch (e) {
    if (e instanceof NiftiError) throw e;
    // A library or RangeError from a malformed header: still say which file.
    throw new NiftiError(`${name}: not a readable NIfTI file (${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
}

function decode(buf: ArrayBuffer, name: string, fail: (msg: string) => never): Volume {
  const dv = new DataView(buf);
  if (buf.byteLength < 348) fail(`truncated header: ${buf.byteLength} bytes, a NIfTI header needs at least 348`);
  // sizeof_hdr tells the version and (by which byte order reads it) the endianness.
  const sizeLE = dv.getInt32(0, true);
  const sizeBE = dv.getInt32(0, false);
  const v2 = sizeLE === 540 || sizeBE === 540;
  if (!v2 && sizeLE !== 348 && sizeBE !== 348) fail(`bad sizeof_hdr ${sizeLE} (expected 348 for NIfTI-1 or 540 for NIfTI-2)`);
  const hdrSize = v2 ? 540 : 348;
  if (buf.byteLength < hdrSize) fail(`truncated header: ${buf.byteLength} bytes, a NIfTI-2 header needs 540`);
  const magicAt = v2 ? 4 : 344;
  const magic = String.fromCharCode(...new Uint8Array(buf, magicAt, 3));
  const want = v2 ? 'n+2' : 'n+1';
  if (magic === (v2 ? 'ni2' : 'ni1')) fail(`magic '${magic}' marks a .hdr/.img pair; only single-file NIfTI is supported`);
  if (magic !== want) fail(`bad magic ${JSON.stringify(magic)} (expected '${want}')`);

  // Only the fixed header goes to the library, so malformed extensions (which nibabel skips) can't throw.
  const h = v2 ? new NIFTI2() : new NIFTI1();
  h.readHeader(buf.slice(0, hdrSize));
  const le = h.littleEndian;

  const dt = DTYPES.get(h.datatypeCode);
  if (!dt) fail(`unsupported datatype ${UNSUPPORTED[h.datatypeCode] ?? 'code ' + h.datatypeCode} (supported: ${[...DTYPES.values()].map((d) => d.name).join(', ')})`);
  const { name: dtype, bytes: nbytes, view } = dt!;

  // NIfTI-2's int64 fields are read here: the library mis-signs negative ones.
  const int64 = (at: number) => Number(dv.getBigInt64(at, le));
  const dim = (d: number) => (v2 ? int64(16 + 8 * d) : (h.dims[d] ?? 0));
  const ndim = dim(0);
  if (!(ndim >= 1 && ndim <= 7)) fail(`dim[0] = ${ndim}, expected 1..7`);
  const dims: number[] = [];
  for (let d = 1; d <= ndim; d++) {
    const n = dim(d);
    if (!Number.isSafeInteger(n) || n <= 0) fail(`non-positive or invalid dim[${d}] = ${n}`);
    dims.push(n);
  }
  // Volumes with fewer than 3 dims get trailing 1s; beyond 3, only singleton dims (e.g. a 4-D file with one frame).
  if (dims.slice(3).some((n) => n !== 1)) fail(`dims [${dims.join(', ')}] have more than 3 non-singleton axes; only 3-D volumes are supported`);
  const [ni = 1, nj = 1, nk = 1] = dims;
  const count = ni * nj * nk;

  // nibabel truncates the float vox_offset; anything inside the fixed header is corrupt.
  const offset = v2 ? int64(168) : Math.trunc(h.vox_offset);
  const minOffset = hdrSize + 4;
  if (!(offset >= minOffset)) fail(`vox_offset ${offset} is inside the header (needs at least ${minOffset})`);
  const need = offset + count * nbytes;
  if (buf.byteLength < need) fail(`truncated: ${buf.byteLength} bytes, but ${ni}×${nj}×${nk} ${dtype} voxels at vox_offset ${offset} need ${need}`);

  // Typed arrays need aligned offsets and host byte order; otherwise copy (never swapping the caller's bytes).
  const swap = le !== HOST_LITTLE && nbytes > 1;
  let src: Typed;
  if (!swap && offset % nbytes === 0) src = view(buf, offset, count);
  else {
    const raw = buf.slice(offset, need);
    if (swap) swapBytes(new Uint8Array(raw), nbytes);
    src = view(raw, 0, count);
  }

  // As nibabel's get_slope_inter: slope 0 or non-finite means unscaled; a finite slope needs a finite intercept.
  let slope = h.scl_slope;
  let inter = h.scl_inter;
  if (slope === 0 || !Number.isFinite(slope)) {
    slope = 1;
    inter = 0;
  } else if (!Number.isFinite(inter)) fail(`scl_slope ${slope} with non-finite scl_inter ${inter}`);

  const data = transpose(src, ni, nj, nk, slope, inter);
  const affine = bestAffine(h, dv, v2, le, ndim, [ni, nj, nk], fail);
  const spacing = [0, 1, 2].map((c) => Math.hypot(affine[c]!, affine[4 + c]!, affine[8 + c]!)) as [number, number, number];
  return { data, shape: [ni, nj, nk], spacing, affine, dtype, name };
}

/**
 * The file stores i fastest; the tensor wants k fastest: `out[(i*nj + j)*nk + k] = src[i + ni*(j + nj*k)]`.
 * For each j that is a 2-D (k, i) → (i, k) transpose, done in 32×32 tiles so reads and writes both stay
 * in cache (2–3× faster than the plain loop on a CT-sized volume). Scaling in f64 with one rounding to
 * f32, as nibabel; unscaled data is copied untouched (keeps −0), as nibabel skips slope 1, inter 0.
 */
function transpose(src: Typed, ni: number, nj: number, nk: number, slope: number, inter: number): Float32Array {
  const out = new Float32Array(ni * nj * nk);
  const strideK = ni * nj;
  const scaled = slope !== 1 || inter !== 0;
  const T = 32;
  for (let j = 0; j < nj; j++) {
    for (let i0 = 0; i0 < ni; i0 += T) {
      const i1 = Math.min(i0 + T, ni);
      for (let k0 = 0; k0 < nk; k0 += T) {
        const k1 = Math.min(k0 + T, nk);
        for (let i = i0; i < i1; i++) {
          let o = (i * nj + j) * nk + k0;
          let s = i + ni * j + strideK * k0;
          for (let k = k0; k < k1; k++, s += strideK) out[o++] = scaled ? src[s]! * slope + inter : src[s]!;
        }
      }
    }
  }
  return out;
}

/**
 * The affine MONAI ends up with: nibabel's `get_best_affine` (sform if its code is set, else qform,
 * else the centred, x-flipped base affine), then MONAI's `correct_nifti_header_if_necessary`, which
 * swaps in the other form when the chosen one's voxel sizes disagree with pixdim and the other's agree.
 */
function bestAffine(
  h: NIFTI1 | NIFTI2,
  dv: DataView,
  v2: boolean,
  le: boolean,
  ndim: number,
  shape: number[],
  fail: (msg: string) => never,
): number[] {
  // nibabel's header check on load: pixdim[1..3] 0 → 1, negative → abs; qfac other than ±1 → 1.
  const pix = h.pixDims.slice(0, 8).map((p, d) => (d >= 1 && d <= 3 ? Math.abs(p) || 1 : p));
  const [, px = 1, py = 1, pz = 1] = pix;
  // NIfTI-1 stores srow as f32; nibabel's set_sform writes back through the same f32 fields.
  const store = v2 ? (x: number) => x : Math.fround;

  const srowAt = v2 ? 400 : 280;
  const sform = [0, 1, 2]
    .flatMap((r) => [0, 1, 2, 3].map((c) => (v2 ? dv.getFloat64(srowAt + (r * 4 + c) * 8, le) : dv.getFloat32(srowAt + (r * 4 + c) * 4, le))))
    .concat([0, 0, 0, 1]);

  const qform = (): number[] => {
    const [b, c, d] = [h.quatern_b, h.quatern_c, h.quatern_d];
    // Rounding in the stored b, c, d can push 1 − |bcd|² slightly negative; nibabel takes that as w = 0.
    const w2 = 1 - (b * b + c * c + d * d);
    const thresh = v2 ? 3 * 2 ** -52 : 3 * 2 ** -23;
    if (Math.abs(w2) >= thresh && w2 < 0) fail(`qform quaternion (b, c, d) = (${b}, ${c}, ${d}) has norm above 1`);
    const R = quatToMat(Math.abs(w2) < thresh ? 0 : Math.sqrt(w2), b, c, d);
    const s = [px, py, pix[0] === -1 ? -pz : pz];
    const t = [h.qoffset_x, h.qoffset_y, h.qoffset_z];
    return [0, 1, 2].flatMap((r) => [R[r * 3]! * s[0]!, R[r * 3 + 1]! * s[1]!, R[r * 3 + 2]! * s[2]!, t[r]!]).concat([0, 0, 0, 1]);
  };

  // nibabel resets xform codes outside 0..5 to 0 when it checks the header.
  const sCode = h.sform_code >= 1 && h.sform_code <= 5;
  const qCode = h.qform_code >= 1 && h.qform_code <= 5;
  if (!sCode && !qCode) {
    const [ni = 1, nj = 1, nk = 1] = shape;
    return [-px, 0, 0, (px * (ni - 1)) / 2, 0, py, 0, (-py * (nj - 1)) / 2, 0, 0, pz, (-pz * (nk - 1)) / 2, 0, 0, 0, 1];
  }
  const best = sCode ? sform : qform();
  if (ndim >= 5) return best;
  // MONAI compares ndim columns of the affine (for a 4-D file that includes the translation column) with pixdim[1..ndim].
  const zooms = pix.slice(1, ndim + 1);
  const norms = (a: number[]) => zooms.map((_, c) => Math.hypot(...zooms.map((_, r) => a[r * 4 + c]!)));
  const close = (a: number[], b: number[]) => a.every((x, i) => Math.abs(x - b[i]!) <= 1e-8 + 1e-5 * Math.abs(b[i]!));
  if (close(zooms, norms(best))) return best;
  const q = qform();
  const sOk = close(norms(sform), zooms);
  const qOk = close(norms(q), zooms);
  if (sCode) {
    if (sOk) return sform;
    if (qOk) return q.map(store);
  }
  if (qCode) {
    if (qOk) return q;
    // MONAI re-encodes the sform as the qform; that equals the sform up to the quaternion's rounding.
    if (sOk) return sform;
  }
  return best;
}

/** Rotation matrix (row-major 3×3) of quaternion (w, x, y, z), normalising as nibabel's quat2mat. */
function quatToMat(w: number, x: number, y: number, z: number): number[] {
  const n = w * w + x * x + y * y + z * z;
  if (n < 2 ** -52) return [1, 0, 0, 0, 1, 0, 0, 0, 1];
  const s = 2 / n;
  const X = x * s, Y = y * s, Z = z * s;
  return [
    1 - (y * Y + z * Z), x * Y - w * Z, x * Z + w * Y,
    x * Y + w * Z, 1 - (x * X + z * Z), y * Z - w * X,
    x * Z - w * Y, y * Z + w * X, 1 - (x * X + y * Y),
  ];
}

function swapBytes(b: Uint8Array, n: number): void {
  for (let p = 0; p < b.length; p += n) {
    for (let lo = p, hi = p + n - 1; lo < hi; lo++, hi--) {
      const t = b[lo]!;
      b[lo] = b[hi]!;
      b[hi] = t;
    }
  }
}

/** An ArrayBuffer holding exactly these bytes (a Node Buffer may be a view into a shared pool). */
function exactBuffer(b: Uint8Array): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) return b.buffer;
  return new Uint8Array(b).buffer; // a copy; Buffer#slice would not copy
}

/**
 * MONAI `ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0, b_max=1, clip=True)`: clips to [lo, hi]
 * and maps it linearly onto [0, 1].
 */
export function windowHu(data: Float32Array, lo: number, hi: number): Float32Array {
  if (!(Number.isFinite(lo) && Number.isFinite(hi) && lo < hi)) throw new NiftiError(`windowHu: need finite lo < hi, got lo=${lo}, hi=${hi}`);
  // torch computes (x − lo) / (hi − lo) in f32, scalars rounded to f32: augment.ts's applyWindow does exactly that.
  return applyWindow(data, lo, hi, new Float32Array(data.length));
}
