/** LayerNorm over the last axis (PyTorch semantics: biased variance, eps inside the sqrt). */
import code from '../../shaders/layernorm.wgsl';
import type { ShaderFile } from '../gpu/kernel.js';
import { ReefError } from '../gpu/errors.js';
import { empty } from '../tensor/create.js';
import { noGrad } from '../tensor/grad-mode.js';
import { record } from '../tensor/tape.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor/tensor.js';
import { grid1d, gridRows, split2 } from './geometry.js';
import { cast } from './cast.js';
import { alignedCount, bindRange, overBindingLimit, pieceRanges } from './binding-range.js';
import { sum } from './reduce.js';

export const LAYERNORM: ShaderFile = { name: 'layernorm', code };
const WG = 64;
const ROWS_PER_CHUNK = 64;
/** Longest row the one-row-per-invocation entries take (on CPU adapters; GPUs always use a workgroup per row). */
const ROWS_VARIANT_MAX_C = 4096;

/** Per adapter and shape: a workgroup per row, or (CPU adapters, short rows, enough of them) a row per invocation. */
function perRowInvocation(x: Tensor, rows: number, C: number): boolean {
  const forced = x.rt.host.env('REEF_LAYERNORM');
  if (forced === 'rows') return true;
  if (forced === 'workgroup') return false;
  return x.rt.caps.isCpu && C <= ROWS_VARIANT_MAX_C && rows >= 4 * WG;
}

export function layerNorm(x: Tensor, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  const C = x.shape[x.ndim - 1];
  if (C === undefined || C === 0) throw new ReefError(`layerNorm: ${x.describe()} has no channels`);
  const affine = weight !== null;
  if ((weight === null) !== (bias === null)) throw new ReefError('layerNorm: give both weight and bias, or neither');
  for (const p of [weight, bias]) {
    if (p && (p.ndim !== 1 || p.shape[0] !== C || p.dtype !== x.dtype)) throw new ReefError(`layerNorm: parameter ${p.describe()} must be ${x.dtype}[${C}]`);
  }
  const rt = x.rt;
  const rows = x.size / C;
  const y = empty(rt, x.shape, x.dtype, 'layernorm');
  const stats = empty(rt, [rows, 2], 'f32', 'layernorm_stats');
  const params = { rows, C, eps, chunks: Math.ceil(rows / ROWS_PER_CHUNK), statsRow0: 0 };
  const bytes = BYTES_PER_ELEMENT[x.dtype];
  const byRow = perRowInvocation(x, rows, C);
  // Rows bound in pieces when x is over the binding limit (InstanceNorm of a 48 × 96³ map).
  const pieces = rowPieces(x, rows, C);
  const gridOf = (n: number) => (byRow ? grid1d(n, WG, rt.caps.maxWorkgroupsPerDimension) : gridRows(n, rt.caps.maxWorkgroupsPerDimension));
  // Rows r0 … r0 + n of a [rows, C] tensor: the whole buffer when there is a single piece.
  const cut = (t: Tensor, r0: number, n: number) => (pieces.length === 1 ? t.buffer : bindRange(t, r0 * C, (r0 + n) * C).slice);
  for (const [r0, n] of pieces) {
    rt.dispatch({
      kernel: { shader: LAYERNORM, entry: byRow ? 'forward_rows' : 'forward', elem: x.dtype, consts: { WG }, overrides: { AFFINE: affine } },
      buffers: { x: cut(x, r0, n), weight: weight?.buffer ?? rt.dummy, bias: bias?.buffer ?? rt.dummy, y: cut(y, r0, n), stats: stats.buffer },
      params: { ...params, rows: n, statsRow0: r0 },
      workgroups: gridOf(n),
      work: { flops: 8 * n * C, bytes: 3 * n * C * bytes },
    });
  }
  const inputs = affine ? [x, weight!, bias!] : [x];
  const out = record('layerNorm', y, inputs, affine ? [x, stats, weight!] : [x, stats], (g, saved) =>
    noGrad(() => {
      const [xs, st, w] = saved as [Tensor, Tensor, Tensor | undefined];
      const dx = x.requiresGrad ? empty(rt, x.shape, x.dtype, 'layernorm_dx') : null;
      if (dx) {
        for (const [r0, n] of pieces) {
          rt.dispatch({
            kernel: { shader: LAYERNORM, entry: byRow ? 'backward_input_rows' : 'backward_input', elem: x.dtype, consts: { WG }, overrides: { AFFINE: affine } },
            buffers: { x: cut(xs, r0, n), weight: w?.buffer ?? rt.dummy, grad: cut(g, r0, n), y: cut(dx, r0, n), stats: st.buffer },
            params: { ...params, rows: n, statsRow0: r0 },
            workgroups: gridOf(n),
            work: { flops: 10 * n * C, bytes: 3 * n * C * bytes },
          });
        }
      }
      if (!affine || !(weight!.requiresGrad || bias!.requiresGrad)) return affine ? [dx, null, null] : [dx];
      const partialW = empty(rt, [params.chunks, C], 'f32', 'layernorm_dw_partial');
      const partialB = empty(rt, [params.chunks, C], 'f32', 'layernorm_db_partial');
      rt.dispatch({
        kernel: { shader: LAYERNORM, entry: 'backward_params', elem: x.dtype, consts: { WG, ROWS_PER_CHUNK } },
        buffers: { x: xs.buffer, grad: g.buffer, stats: st.buffer, dweight: partialW.buffer, dbias: partialB.buffer },
        params,
        workgroups: [Math.ceil(C / WG), ...split2(params.chunks, rt.caps.maxWorkgroupsPerDimension)],
        work: { flops: 4 * x.size, bytes: 2 * x.size * bytes },
      });
      // Partial sums are f32 whatever the element type; the gradients take the parameters' type.
      const dw = toParamType(sum(partialW, [0]), x.dtype);
      const db = toParamType(sum(partialB, [0]), x.dtype);
      partialW.dispose();
      partialB.dispose();
      return [dx, dw, db];
    }),
  );
  stats.dispose();
  return out;
}

/** Row ranges to dispatch: all rows at once, or aligned blocks when x is over the binding limit. */
function rowPieces(x: Tensor, rows: number, C: number): [number, number][] {
  const rt = x.rt;
  const E = BYTES_PER_ELEMENT[x.dtype];
  if (rows === 0) return [];
  if (!overBindingLimit(rt, x.size * E)) return [[0, rows]];
  const align = rt.caps.minStorageBufferOffsetAlignment;
  // A block starts aligned in x and y (C values a row); the stats are bound whole.
  const unit = alignedCount(C * E, align);
  const pieces = pieceRanges(rows, C * E, unit, rt.caps.maxStorageBufferBindingSize);
  if (!pieces) throw new ReefError(`layerNorm: ${x.describe()}: ${unit} rows of ${C} values do not fit a storage binding of ${rt.caps.maxStorageBufferBindingSize} bytes`);
  return pieces;
}

function toParamType(g: Tensor, dtype: Tensor['dtype']): Tensor {
  if (g.dtype === dtype) return g;
  const out = cast(g, dtype);
  g.dispose();
  return out;
}
