/** Row-wise L2 normalisation over the last axis: y = x / max(‖x‖₂, eps), as torch's F.normalize. */
import code from '../../shaders/l2_normalize.wgsl';
import type { ShaderFile } from '../gpu/kernel.js';
import { ReefError } from '../gpu/errors.js';
import { empty } from '../tensor/create.js';
import { record } from '../tensor/tape.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor/tensor.js';
import { grid1d, gridRows } from './geometry.js';

export const L2_NORMALIZE: ShaderFile = { name: 'l2_normalize', code };
const WG = 64;
const ROWS_VARIANT_MAX_C = 4096;

/** A row per invocation on CPU adapters for short rows (no barriers), else a workgroup per row. */
function perRowInvocation(x: Tensor, rows: number, C: number): boolean {
  const forced = x.rt.host.env('REEF_L2NORMALIZE');
  if (forced === 'rows') return true;
  if (forced === 'workgroup') return false;
  return x.rt.caps.isCpu && C <= ROWS_VARIANT_MAX_C && rows >= WG;
}

export function l2Normalize(x: Tensor, eps = 1e-12): Tensor {
  const C = x.shape[x.ndim - 1];
  if (!C) throw new ReefError(`l2Normalize: ${x.describe()} has an empty last axis`);
  if (!(eps >= 0)) throw new ReefError(`l2Normalize: eps must be ≥ 0, got ${eps}`);
  const rt = x.rt;
  const rows = x.size / C;
  const y = empty(rt, x.shape, x.dtype, 'l2_normalize');
  const norms = empty(rt, [rows], 'f32', 'l2_norms');
  const byRow = perRowInvocation(x, rows, C);
  const workgroups = byRow ? grid1d(rows, WG, rt.caps.maxWorkgroupsPerDimension) : gridRows(rows, rt.caps.maxWorkgroupsPerDimension);
  const params = { rows, C, eps };
  const bytes = BYTES_PER_ELEMENT[x.dtype];
  const run = (entry: 'forward' | 'backward', src: Tensor, nrm: Tensor, grad: Tensor | null, out: Tensor) =>
    rt.dispatch({
      kernel: { shader: L2_NORMALIZE, entry: byRow ? `${entry}_rows` : entry, elem: x.dtype },
      buffers: entry === 'forward' ? { x: src.buffer, out: out.buffer, norms: nrm.buffer } : { x: src.buffer, grad: grad!.buffer, out: out.buffer, norms: nrm.buffer },
      params,
      workgroups,
      work: { flops: (entry === 'forward' ? 3 : 5) * x.size, bytes: (entry === 'forward' ? 2 : 4) * x.size * bytes },
    });
  if (rows > 0) run('forward', x, norms, null, y);
  const out = record('l2Normalize', y, [x], [y, norms], (g, [ys, ns]) => {
    const dx = empty(rt, x.shape, x.dtype, 'l2_normalize_dx');
    if (rows > 0) run('backward', ys!, ns!, g, dx);
    return [dx];
  });
  norms.dispose();
  return out;
}
