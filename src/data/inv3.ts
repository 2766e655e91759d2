/**
 * InVesalius 3 project files (`.inv3`): a gzip'd tar (or a plain tar) holding `main.plist` (XML
 * plist: `matrix` {filename, shape (z, y, x), dtype}, `spacing` (x, y, z) in mm, `scalar_range`,
 * `modality`, window, `orientation`, ...) and the raw volume, `matrix.dat` (little-endian, C order
 * (z, y, x), no header). Members may sit under a directory; they are found by base name.
 *
 * Axis mapping: the volume comes out as NIfTI loading would give it had the matrix been written
 * as a NIfTI with dims (x, y, z) (x fastest on disk, i.e. the matrix bytes unchanged): tensor axes
 * (i, j, k) = (x, y, z), `data[(x*ny + y)*nz + z] = matrix[z][y][x]`, spacing (sx, sy, sz), and the
 * affine a plain diag(sx, sy, sz) scaling. No patient orientation is claimed (InVesalius keeps none).
 */
import type { Volume } from './nifti.js';
import { DataError } from './errors.js';
import { gunzipChecked, isGzip } from './gzip.js';
import { swapAxes02 } from './layout.js';
import { parsePlist, type PlistDict, type PlistValue } from './plist.js';
import { readTar, type TarEntry } from './tar.js';

export interface Inv3 {
  volume: Volume;
  /** The matrix as stored: (z, y, x) C order, i.e. NIfTI file order for dims (x, y, z). */
  matrix: Int16Array;
  /** (nx, ny, nz). */
  dims: [number, number, number];
  meta: {
    name?: string;
    modality?: string;
    /** InVesalius' acquisition orientation code (1 axial, 2 coronal, 3 sagittal). */
    orientation?: number;
    scalarRange?: [number, number];
    window?: { level: number; width: number };
    invesaliusVersion?: string;
  };
}

const HOST_LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isDict(v: PlistValue | undefined): v is PlistDict {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function baseName(p: string): string {
  const parts = p.split('/').filter((s) => s !== '');
  return parts[parts.length - 1] ?? '';
}

export function decodeInv3(bytes: Uint8Array, name: string): Inv3 {
  const fail = (msg: string): never => {
    throw new DataError(`${name}: ${msg}`);
  };
  const tarBytes = isGzip(bytes) ? gunzipChecked(bytes, name) : bytes;
  const entries = readTar(tarBytes, name).filter((e) => e.type === '0' || e.type === '7');
  const member = (file: string): TarEntry => {
    const hits = entries.filter((e) => baseName(e.name) === file);
    if (hits.length === 0) fail(`not an InVesalius project: no ${file} in the archive (members: ${entries.map((e) => e.name).join(', ') || 'none'})`);
    if (hits.length > 1) fail(`ambiguous archive: ${hits.length} members named ${file}`);
    return hits[0]!;
  };

  const plist = parsePlist(new TextDecoder().decode(member('main.plist').data), `${name}:main.plist`);
  if (!isDict(plist)) return fail('main.plist: the root is not a <dict>');
  const matrixInfo = plist['matrix'];
  if (!isDict(matrixInfo)) return fail('main.plist: no "matrix" dict');
  const shape = matrixInfo['shape'];
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((n) => typeof n === 'number' && Number.isSafeInteger(n) && n > 0)) {
    return fail(`main.plist: matrix.shape must be 3 positive integers (z, y, x), got ${JSON.stringify(shape)}`);
  }
  const [nz, ny, nx] = shape as [number, number, number];
  const dtype = matrixInfo['dtype'] ?? 'int16';
  if (dtype !== 'int16') fail(`main.plist: unsupported matrix dtype ${JSON.stringify(dtype)} (InVesalius projects hold int16)`);
  const file = matrixInfo['filename'] ?? 'matrix.dat';
  if (typeof file !== 'string' || file === '') return fail('main.plist: matrix.filename is not a string');
  const sp = plist['spacing'];
  if (!Array.isArray(sp) || sp.length !== 3 || !sp.every((s) => typeof s === 'number' && Number.isFinite(s) && s > 0)) {
    return fail(`main.plist: spacing must be 3 positive numbers (x, y, z) in mm, got ${JSON.stringify(sp)}`);
  }
  const spacing = sp as [number, number, number];

  const raw = member(baseName(file)).data;
  const count = nx * ny * nz;
  if (raw.length !== count * 2) {
    fail(`${file} holds ${raw.length} bytes, but matrix.shape (z, y, x) = (${nz}, ${ny}, ${nx}) int16 needs ${count * 2}${raw.length < count * 2 ? ' (truncated?)' : ''}`);
  }
  let matrix: Int16Array;
  if (HOST_LITTLE && raw.byteOffset % 2 === 0) matrix = new Int16Array(raw.buffer, raw.byteOffset, count);
  else {
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.length);
    matrix = new Int16Array(count);
    for (let p = 0; p < count; p++) matrix[p] = dv.getInt16(2 * p, true);
  }
  const data = swapAxes02(matrix, nz, ny, nx, new Float32Array(count));

  const meta: Inv3['meta'] = {};
  const str = (k: string) => (typeof plist[k] === 'string' ? (plist[k] as string) : undefined);
  const num = (k: string) => (typeof plist[k] === 'number' ? (plist[k] as number) : undefined);
  if (str('name') !== undefined) meta.name = str('name');
  if (str('modality') !== undefined) meta.modality = str('modality');
  if (num('orientation') !== undefined) meta.orientation = num('orientation');
  if (str('invesalius_version') !== undefined) meta.invesaliusVersion = str('invesalius_version');
  const range = plist['scalar_range'];
  if (Array.isArray(range) && range.length === 2 && range.every((v) => typeof v === 'number')) meta.scalarRange = range as [number, number];
  const level = num('window_level');
  const width = num('window_width');
  if (level !== undefined && width !== undefined) meta.window = { level, width };

  const [sx, sy, sz] = spacing;
  const affine = [sx, 0, 0, 0, 0, sy, 0, 0, 0, 0, sz, 0, 0, 0, 0, 1];
  return {
    volume: { data, shape: [nx, ny, nz], spacing: [sx, sy, sz], affine, dtype: 'int16', name },
    matrix,
    dims: [nx, ny, nz],
    meta,
  };
}
