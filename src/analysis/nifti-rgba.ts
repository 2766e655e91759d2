/**
 * A colour volume as a single-file NIfTI-1 of datatype RGBA32 (2304), on the same grid and affine
 * as a scan, so a viewer can lay it over the scan. encodeNifti1 writes scalar volumes only; this
 * writes the header fields a colour overlay needs: dims, pixdim, mm units, the affine as the sform
 * (code 1; no qform), four bytes per voxel in file order (i fastest).
 */
import { DataError } from '../data/errors.js';

const HDR = 348;
const VOX_OFFSET = 352;

/**
 * `rgba` holds R, G, B, A per voxel in reef's tensor order (`(i·nj + j)·nk + k`, as Volume.data);
 * `affine` is the 4×4 row-major voxel→world matrix.
 */
export function encodeNiftiRgba(rgba: Uint8Array, like: { shape: readonly [number, number, number]; affine: readonly number[]; name?: string }): Uint8Array {
  const [ni, nj, nk] = like.shape;
  const count = ni * nj * nk;
  const name = like.name ?? 'volume';
  if (rgba.length !== 4 * count) throw new DataError(`${name}: ${rgba.length} bytes for ${count} RGBA voxels`);
  if (like.affine.length !== 16) throw new DataError(`${name}: the affine needs 16 values, got ${like.affine.length}`);
  if ([ni, nj, nk].some((n) => n > 32767)) throw new DataError(`${name}: NIfTI-1 dims are int16; [${like.shape.join(', ')}] is too large`);
  const out = new Uint8Array(VOX_OFFSET + 4 * count);
  const dv = new DataView(out.buffer);
  const A = like.affine;
  dv.setInt32(0, HDR, true);
  [3, ni, nj, nk, 1, 1, 1, 1].forEach((d, n) => dv.setInt16(40 + 2 * n, d, true));
  dv.setInt16(70, 2304, true); // DT_RGBA32
  dv.setInt16(72, 32, true);
  const zoom = (c: number) => Math.hypot(A[c]!, A[4 + c]!, A[8 + c]!);
  [1, zoom(0), zoom(1), zoom(2), 1, 1, 1, 1].forEach((p, n) => dv.setFloat32(76 + 4 * n, p, true));
  dv.setFloat32(108, VOX_OFFSET, true);
  dv.setFloat32(112, 1, true); // scl_slope
  dv.setUint8(123, 2); // xyzt_units: mm
  dv.setInt16(252, 0, true); // qform_code
  dv.setInt16(254, 1, true); // sform_code: scanner
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) dv.setFloat32(280 + 16 * r + 4 * c, A[4 * r + c]!, true);
  out.set([0x6e, 0x2b, 0x31, 0], 344); // "n+1\0"
  for (let i = 0; i < ni; i++) {
    for (let j = 0; j < nj; j++) {
      for (let k = 0; k < nk; k++) {
        const src = 4 * ((i * nj + j) * nk + k);
        const dst = VOX_OFFSET + 4 * ((k * nj + j) * ni + i);
        out[dst] = rgba[src]!;
        out[dst + 1] = rgba[src + 1]!;
        out[dst + 2] = rgba[src + 2]!;
        out[dst + 3] = rgba[src + 3]!;
      }
    }
  }
  return out;
}
