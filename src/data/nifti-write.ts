/**
 * Writing single-file NIfTI-1 (`.nii`, or `.nii.gz` with `gzip: true`) from a reef volume, the
 * inverse of decodeNifti: tensor axes (i, j, k) go back to file order (i fastest). The header
 * carries dims, pixdim (column norms of the affine), mm units, the affine as sform (code 1) and a
 * qform (code 1) derived from it: exact when the affine is a rotation times positive scales,
 * possibly with a reflection (qfac −1). Values are stored unscaled (slope 1, intercept 0).
 */
import { gzipSync } from 'fflate';
import type { Volume } from './nifti.js';
import { DataError } from './errors.js';
import { swapAxes02 } from './layout.js';

export interface NiftiWriteOptions {
  /** Stored datatype; int16 requires whole values in [−32768, 32767]. Default float32. */
  dtype?: 'int16' | 'float32';
  gzip?: boolean;
  /** Up to 79 ASCII characters for the header's `descrip`. */
  description?: string;
}

const HDR = 348;
const VOX_OFFSET = 352;

export function encodeNifti1(vol: Pick<Volume, 'data' | 'shape' | 'affine' | 'name'>, opts: NiftiWriteOptions = {}): Uint8Array {
  const dtype = opts.dtype ?? 'float32';
  const [ni, nj, nk] = vol.shape;
  const count = ni * nj * nk;
  if (vol.data.length !== count) throw new DataError(`${vol.name}: ${vol.data.length} values for shape [${vol.shape.join(', ')}]`);
  if (vol.affine.length !== 16) throw new DataError(`${vol.name}: the affine needs 16 values, got ${vol.affine.length}`);
  if ([ni, nj, nk].some((n) => n > 32767)) throw new DataError(`${vol.name}: NIfTI-1 dims are int16; [${vol.shape.join(', ')}] is too large`);
  const nb = dtype === 'int16' ? 2 : 4;
  const out = new Uint8Array(VOX_OFFSET + count * nb);
  const dv = new DataView(out.buffer);

  const A = vol.affine;
  const col = (c: number) => [A[c]!, A[4 + c]!, A[8 + c]!];
  const zooms = [0, 1, 2].map((c) => Math.hypot(...col(c)));
  if (!zooms.every((z) => Number.isFinite(z) && z > 0)) throw new DataError(`${vol.name}: the affine has a zero or non-finite column`);
  const { qfac, quat } = affineToQuaternion(A, zooms);

  dv.setInt32(0, HDR, true);
  out[38] = 'r'.charCodeAt(0);
  const dims = [3, ni, nj, nk, 1, 1, 1, 1];
  dims.forEach((d, n) => dv.setInt16(40 + 2 * n, d, true));
  dv.setInt16(70, dtype === 'int16' ? 4 : 16, true);
  dv.setInt16(72, nb * 8, true);
  [qfac, zooms[0]!, zooms[1]!, zooms[2]!, 1, 1, 1, 1].forEach((p, n) => dv.setFloat32(76 + 4 * n, p, true));
  dv.setFloat32(108, VOX_OFFSET, true);
  dv.setFloat32(112, 1, true);
  dv.setFloat32(116, 0, true);
  out[123] = 2; // xyzt_units: mm
  const desc = (opts.description ?? 'reef').slice(0, 79);
  for (let n = 0; n < desc.length; n++) out[148 + n] = desc.charCodeAt(n) & 0x7f;
  dv.setInt16(252, 1, true); // qform_code: scanner
  dv.setInt16(254, 1, true); // sform_code: scanner
  [quat[1], quat[2], quat[3], A[3]!, A[7]!, A[11]!].forEach((q, n) => dv.setFloat32(256 + 4 * n, q, true));
  for (let n = 0; n < 12; n++) dv.setFloat32(280 + 4 * n, A[n]!, true);
  out.set([0x6e, 0x2b, 0x31, 0], 344); // "n+1\0"

  const body = new Uint8Array(out.buffer, VOX_OFFSET);
  if (dtype === 'int16') {
    for (let p = 0; p < count; p++) {
      const v = vol.data[p]!;
      if (!(Number.isInteger(v) && v >= -32768 && v <= 32767)) {
        throw new DataError(`${vol.name}: value ${v} at flat index ${p} is not a whole number in the int16 range; write float32 instead`);
      }
    }
    const file = swapAxes02(vol.data, ni, nj, nk, new Int16Array(count));
    writeLE(body, file, 2);
  } else {
    const file = swapAxes02(vol.data, ni, nj, nk, new Float32Array(count));
    writeLE(body, file, 4);
  }
  return opts.gzip ? gzipSync(out, { level: 6 }) : out;
}

const HOST_LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function writeLE(dst: Uint8Array, src: Int16Array | Float32Array, nb: number): void {
  const bytes = new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
  if (HOST_LITTLE) {
    dst.set(bytes);
    return;
  }
  for (let p = 0; p < bytes.length; p += nb) for (let b = 0; b < nb; b++) dst[p + b] = bytes[p + nb - 1 - b]!;
}

/**
 * The quaternion (a, b, c, d) with a ≥ 0 and qfac of the rotation part of a 4×4 row-major affine,
 * as NIfTI-1 defines them: R = columns / zooms, and a negative determinant is carried by qfac = −1
 * with the third column negated.
 */
export function affineToQuaternion(A: readonly number[], zooms: readonly number[]): { qfac: 1 | -1; quat: [number, number, number, number] } {
  const r = (row: number, c: number) => A[row * 4 + c]! / zooms[c]!;
  const R = [r(0, 0), r(0, 1), r(0, 2), r(1, 0), r(1, 1), r(1, 2), r(2, 0), r(2, 1), r(2, 2)];
  const det = R[0]! * (R[4]! * R[8]! - R[5]! * R[7]!) - R[1]! * (R[3]! * R[8]! - R[5]! * R[6]!) + R[2]! * (R[3]! * R[7]! - R[4]! * R[6]!);
  const qfac: 1 | -1 = det < 0 ? -1 : 1;
  if (qfac < 0) [2, 5, 8].forEach((n) => (R[n] = -R[n]!));
  const [r11, r12, r13, r21, r22, r23, r31, r32, r33] = R as [number, number, number, number, number, number, number, number, number];
  let a: number, b: number, c: number, d: number;
  const tr = r11 + r22 + r33 + 1;
  if (tr > 0.5) {
    a = 0.5 * Math.sqrt(tr);
    b = (0.25 * (r32 - r23)) / a;
    c = (0.25 * (r13 - r31)) / a;
    d = (0.25 * (r21 - r12)) / a;
  } else {
    const xd = 1 + r11 - (r22 + r33);
    const yd = 1 + r22 - (r11 + r33);
    const zd = 1 + r33 - (r11 + r22);
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd);
      c = (0.25 * (r12 + r21)) / b;
      d = (0.25 * (r13 + r31)) / b;
      a = (0.25 * (r32 - r23)) / b;
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd);
      b = (0.25 * (r12 + r21)) / c;
      d = (0.25 * (r23 + r32)) / c;
      a = (0.25 * (r13 - r31)) / c;
    } else {
      d = 0.5 * Math.sqrt(zd);
      b = (0.25 * (r13 + r31)) / d;
      c = (0.25 * (r23 + r32)) / d;
      a = (0.25 * (r21 - r12)) / d;
    }
    if (a < 0) {
      a = -a;
      b = -b;
      c = -c;
      d = -d;
    }
  }
  return { qfac, quat: [a, b, c, d] };
}
