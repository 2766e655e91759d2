/**
 * MONAI's 3D (shifted) window attention, fused: q, k, v at the unpadded positions go in, the
 * attention output (before proj) comes out at the same positions. Shift, padding and window
 * partition are index arithmetic in the kernel; padded tokens' q/k/v are the qkv bias (norm1's
 * output is zero there). Softmax is online over key tiles (flash-attention style); the backward
 * recomputes the scores from the saved log-sum-exp and reduces everything in a fixed order.
 */
import code from '../../shaders/window_attention.wgsl';
import rowsCode from '../../shaders/window_attention_rows.wgsl';
import rowsBackwardCode from '../../shaders/window_attention_rows_backward.wgsl';
import type { ShaderFile } from '../gpu/kernel.js';
import { ReefError } from '../gpu/errors.js';
import { empty } from '../tensor/create.js';
import { noGrad } from '../tensor/grad-mode.js';
import { record } from '../tensor/tape.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor/tensor.js';
import { grid1d, gridRows } from './geometry.js';
import { cast } from './cast.js';
import { sum } from './reduce.js';
import { concat, reshape, slice } from './shape.js';

export const WINDOW_ATTENTION: ShaderFile = { name: 'window_attention', code };
export const WINDOW_ATTENTION_ROWS: ShaderFile = { name: 'window_attention_rows', code: rowsCode };
export const WINDOW_ATTENTION_ROWS_BACKWARD: ShaderFile = { name: 'window_attention_rows_backward', code: rowsBackwardCode };
const WG = 64;
/** window_attention_rows: queries per workgroup (343 = 3 chunks of 128, 11 % idle), lanes × queries per lane. */
const CHUNK = 128;

/** window_attention_rows_backward: lanes per workgroup, and about how many dqTable lanes to spread the windows over. */
const WG_BWD = 32;
const DQ_LANES = 4096;

/**
 * Kernels, forward and backward alike. `tiled`: keys staged in workgroup memory, one workgroup per
 * (window, head), for GPUs. `rows`: no workgroup memory or barriers, vec4 loads, several rows per
 * lane, for CPU adapters; it needs a head width divisible by 4 (MONAI's feature sizes are
 * multiples of 12).
 */
export type WindowAttentionVariant = 'tiled' | 'rows';
export const WINDOW_ATTENTION_VARIANTS: readonly WindowAttentionVariant[] = ['tiled', 'rows'];

type Vec3 = readonly [number, number, number];

export interface WindowAttention3dArgs {
  /** [B, D, H, W, heads·hd] each, channels-last, at the unpadded positions. */
  q?: Tensor;
  k?: Tensor;
  v?: Tensor;
  /**
   * Or the qkv projection's output [B, D, H, W, 3·heads·hd] itself: the forward reads q, k and v in
   * place (no copies); the backward returns its gradient in the same layout.
   */
  qkv?: Tensor;
  /** [3C]: the q, k, v of padded positions. */
  qkvBias: Tensor;
  /** [(2cz−1)(2cy−1)(2cx−1), heads] relative-position bias table of the configured window. */
  table: Tensor;
  heads: number;
  /** Effective window and shift of the stage (windowAndShift). */
  window: Vec3;
  shift: Vec3;
  /** The configured window whose index is sliced (default [7, 7, 7]). */
  configuredWindow?: Vec3;
  /** Kernels; default per adapter (REEF_ATTENTION overrides). */
  variant?: WindowAttentionVariant;
}

/** The kernels a call would use: `requested`, else REEF_ATTENTION, else per adapter; rows needs hd % 4 = 0. */
export function windowAttentionVariant(rt: Tensor['rt'], hd: number, C: number, requested?: WindowAttentionVariant): WindowAttentionVariant {
  const forced = rt.host.env('REEF_ATTENTION');
  if (forced !== undefined && !WINDOW_ATTENTION_VARIANTS.includes(forced as WindowAttentionVariant)) {
    throw new ReefError(`REEF_ATTENTION=${forced}: expected ${WINDOW_ATTENTION_VARIANTS.join(' or ')}`);
  }
  const want = requested ?? (forced as WindowAttentionVariant | undefined) ?? (rt.caps.isCpu ? 'rows' : 'tiled');
  // The rows kernels read vec4s: they take head widths divisible by 4 and fall back otherwise.
  return want === 'rows' && (hd % 4 !== 0 || C % 4 !== 0) ? 'tiled' : want;
}

export function windowAttention3d(a: WindowAttention3dArgs): Tensor {
  const { qkvBias, table, heads, window: win, shift } = a;
  const cfg = a.configuredWindow ?? [7, 7, 7];
  const packed = a.qkv ?? null;
  if (packed ? a.q || a.k || a.v : !(a.q && a.k && a.v)) throw new ReefError('windowAttention3d: give either q, k and v, or qkv');
  // `q` stands for the input whose shape and type everything follows.
  const q = packed ?? a.q!;
  if (q.ndim !== 5) throw new ReefError(`windowAttention3d: ${packed ? 'qkv' : 'q'} ${q.describe()} must be [B, D, H, W, ${packed ? '3C' : 'C'}]`);
  if (packed && q.shape[4]! % 3 !== 0) throw new ReefError(`windowAttention3d: qkv ${q.describe()} must have 3C channels`);
  const [B, D, H, W] = q.shape as [number, number, number, number, number];
  const C = packed ? q.shape[4]! / 3 : q.shape[4]!;
  const outShape = [B, D, H, W, C];
  for (const t of packed ? [] : [a.k!, a.v!]) {
    if (t.ndim !== 5 || t.shape.some((d, i) => d !== q.shape[i]) || t.dtype !== q.dtype) {
      throw new ReefError(`windowAttention3d: ${t.describe()} must match q ${q.describe()}`);
    }
  }
  const [qIn, kIn, vIn] = packed ? [packed, packed, packed] : [a.q!, a.k!, a.v!];
  const layout = packed ? { ld: 3 * C, partStep: C } : { ld: C, partStep: 0 };
  if (!Number.isInteger(heads) || heads <= 0 || C % heads !== 0) throw new ReefError(`windowAttention3d: ${C} channels do not split into ${heads} heads`);
  const hd = C / heads;
  const tableRows = (2 * cfg[0] - 1) * (2 * cfg[1] - 1) * (2 * cfg[2] - 1);
  if (qkvBias.ndim !== 1 || qkvBias.shape[0] !== 3 * C || qkvBias.dtype !== q.dtype) throw new ReefError(`windowAttention3d: qkvBias ${qkvBias.describe()} must be ${q.dtype}[${3 * C}]`);
  if (table.ndim !== 2 || table.shape[0] !== tableRows || table.shape[1] !== heads || table.dtype !== q.dtype) {
    throw new ReefError(`windowAttention3d: table ${table.describe()} must be ${q.dtype}[${tableRows}, ${heads}]`);
  }
  for (let i = 0; i < 3; i++) {
    if (!(win[i]! >= 1 && win[i]! <= cfg[i]!)) throw new ReefError(`windowAttention3d: window [${win}] must lie within the configured [${cfg}]`);
    if (!(shift[i]! >= 0 && shift[i]! < win[i]!)) throw new ReefError(`windowAttention3d: shift [${shift}] must be below the window [${win}]`);
  }
  const n = win[0] * win[1] * win[2];
  const [Dp, Hp, Wp] = [Math.ceil(D / win[0]) * win[0], Math.ceil(H / win[1]) * win[1], Math.ceil(W / win[2]) * win[2]];
  const [nwd, nwh, nww] = [Dp / win[0], Hp / win[1], Wp / win[2]];
  const nWin = nwd * nwh * nww;
  const rows = B * nWin * heads;
  const rt = q.rt;
  const params = {
    B, D, H, W, C, heads, n, nWin,
    wd: win[0], wh: win[1], ww: win[2], nwh,
    nww, sd: shift[0], sh: shift[1], sw: shift[2],
    Dp, Hp, Wp, cz: cfg[0],
    cy: cfg[1], cx: cfg[2], rows, scale: hd ** -0.5,
  };
  // Forward key tiles: 2·TK·hd floats + TK vec4s of workgroup memory.
  const TK = hd <= 16 ? 64 : hd <= 32 ? 32 : 16;
  const consts = { WG, HD: hd, NMAX: cfg[0] * cfg[1] * cfg[2], TABLE: tableRows, TK }; // one pipeline for every stage window
  const bytes = BYTES_PER_ELEMENT[q.dtype];
  const out = empty(rt, outShape, q.dtype, 'window_attention');
  const lse = empty(rt, [rows, n], 'f32', 'window_attention_lse');
  const variant = windowAttentionVariant(rt, hd, C, a.variant);
  if (rows > 0 && variant === 'rows') {
    const tq = hd <= 16 ? 8 : hd <= 32 ? 4 : 2;  // queries per lane: fewer for wide heads (registers)
    const WG_ROWS = CHUNK / tq;
    const chunks = Math.ceil(n / (WG_ROWS * tq));
    rt.dispatch({
      kernel: { shader: WINDOW_ATTENTION_ROWS, entry: 'main', elem: q.dtype, consts: { WG: WG_ROWS, H4: hd / 4, TQ: tq } },
      buffers: { q: qIn.buffer, k: kIn.buffer, v: vIn.buffer, qkvBias: qkvBias.buffer, table: table.buffer, o: out.buffer, lse: lse.buffer },
      params: { ...params, ...layout },
      workgroups: gridRows(rows * chunks, rt.caps.maxWorkgroupsPerDimension),
      work: { flops: 4 * rows * n * n * (hd + 2), bytes: 4 * out.size * bytes },
    });
  } else if (rows > 0) {
    rt.dispatch({
      kernel: { shader: WINDOW_ATTENTION, entry: 'forward', elem: q.dtype, consts },
      buffers: { q: qIn.buffer, k: kIn.buffer, v: vIn.buffer, qkvBias: qkvBias.buffer, table: table.buffer, o: out.buffer, lse: lse.buffer },
      params: { ...params, ...layout },
      workgroups: gridRows(rows, rt.caps.maxWorkgroupsPerDimension),
      work: { flops: 4 * rows * n * n * (hd + 2), bytes: 4 * out.size * bytes },
    });
  }
  const inputs = packed ? [packed, qkvBias, table] : [a.q!, a.k!, a.v!, qkvBias, table];
  const res = record('windowAttention3d', out, inputs, [...inputs, out, lse], (g, saved) =>
    noGrad(() => {
      // A packed qkv is cut into q, k, v for the backward (its kernels read three tensors).
      const cut = (i: number) => {
        const part = slice(saved[0]!, [0, 0, 0, 0, i * C], [B, D, H, W, (i + 1) * C]);
        const view = reshape(part, outShape);
        part.dispose();
        return view;
      };
      const parts = packed ? [0, 1, 2].map(cut) : saved.slice(0, 3);
      const [qs, ks, vs] = parts as [Tensor, Tensor, Tensor];
      const [bs, ts, os, ls] = saved.slice(packed ? 1 : 3) as [Tensor, Tensor, Tensor, Tensor];
      const dq = empty(rt, outShape, q.dtype, 'window_attention_dq');
      const dk = empty(rt, outShape, q.dtype, 'window_attention_dk');
      const dv = empty(rt, outShape, q.dtype, 'window_attention_dv');
      let dtable: Tensor;
      let dbias: Tensor;
      if (variant === 'rows' && cfg[2] <= 8) { // its kernels hold one configured-window row of ≤ 8 tokens per lane
        [dtable, dbias] = rowsBackward(rt, { qs, ks, vs, bs, ts, os, ls, g, dq, dk, dv }, params, { hd, tableRows });
      } else {
        const dtablePart = empty(rt, [B * nWin, tableRows, heads], 'f32', 'window_attention_dtable_partial');
        const dbiasPart = empty(rt, [B * nWin, 3 * C], 'f32', 'window_attention_dbias_partial');
        if (rows > 0) {
          rt.dispatch({
            kernel: { shader: WINDOW_ATTENTION, entry: 'backward', elem: q.dtype, consts },
            buffers: {
              q: qs.buffer, k: ks.buffer, v: vs.buffer, qkvBias: bs.buffer, table: ts.buffer, o: os.buffer, lse: ls.buffer,
              dOut: g.buffer, dq: dq.buffer, dk: dk.buffer, dv: dv.buffer, dtablePart: dtablePart.buffer, dbiasPart: dbiasPart.buffer,
            },
            params: { ...params, ld: C, partStep: 0 },
            workgroups: gridRows(rows, rt.caps.maxWorkgroupsPerDimension),
            work: { flops: 12 * rows * n * n * (hd + 2), bytes: 8 * out.size * bytes },
          });
        }
        dtable = sum(dtablePart, [0]);
        dbias = sum(dbiasPart, [0]);
        dtablePart.dispose();
        dbiasPart.dispose();
      }
      dtable = toType(dtable, q.dtype);
      dbias = toType(dbias, q.dtype);
      const keep = (t: Tensor, want: boolean) => {
        if (want) return t;
        t.dispose();
        return null;
      };
      if (packed) {
        for (const t of parts) t.dispose();
        const dqkv = packed.requiresGrad ? concat([dq, dk, dv], 4) : null;
        for (const t of [dq, dk, dv]) t.dispose();
        return [dqkv, keep(dbias, qkvBias.requiresGrad), keep(dtable, table.requiresGrad)];
      }
      return [keep(dq, a.q!.requiresGrad), keep(dk, a.k!.requiresGrad), keep(dv, a.v!.requiresGrad), keep(dbias, qkvBias.requiresGrad), keep(dtable, table.requiresGrad)];
    }),
  );
  lse.dispose();
  return res;
}

/** The forward's uniform parameters (window_attention*.wgsl's Params). */
interface AttentionParams {
  [name: string]: number;
  B: number;
  C: number;
  heads: number;
  n: number;
  nWin: number;
  rows: number;
  cx: number;
}

/**
 * The rows backward (window_attention_rows_backward.wgsl): dqTable (dq, D_i, table-gradient partials
 * per row pair), dkv (dk, dv, padded keys' sums per key row), then fixed-order sums for the qkv-bias
 * and table gradients. Returns the f32
 * table and bias gradients; dq, dk, dv are filled in place.
 */
function rowsBackward(
  rt: Tensor['rt'],
  t: Record<'qs' | 'ks' | 'vs' | 'bs' | 'ts' | 'os' | 'ls' | 'g' | 'dq' | 'dk' | 'dv', Tensor>,
  params: AttentionParams,
  geo: { hd: number; tableRows: number },
): [Tensor, Tensor] {
  const { B, C, heads, n, nWin, rows, cx, ...rest } = params;
  const { hd, tableRows } = geo;
  const nBW = B * nWin;
  const vrows = Math.ceil(n / cx);
  // dqTable lanes walk `group` windows each, summing their table gradient in place: enough lanes
  // to fill the machine, partials of bounded size.
  const chunks0 = Math.max(1, Math.min(nBW, Math.ceil(DQ_LANES / (heads * vrows))));
  const group = Math.max(1, Math.ceil(nBW / chunks0));
  const chunks = Math.ceil(nBW / group);
  const order = dqRowOrder({ ...rest, n, nWin }, cx, vrows);
  const p = { ...rest, B, C, heads, n, nWin, rows, vrows, group, chunks, ordered: order ? 1 : 0, rowOrder: order ?? [] }; // the configured x extent is the CX constant
  const consts = { WG: WG_BWD, H4: hd / 4, CX: cx, XS: 2 * cx - 1, XS4: Math.ceil((2 * cx - 1) / 4), XC4: Math.ceil((3 * cx - 1) / 4) };
  const kernel = (entry: string) => ({ shader: WINDOW_ATTENTION_ROWS_BACKWARD, entry, elem: t.qs.dtype, consts });
  const maxWg = rt.caps.maxWorkgroupsPerDimension;
  const delta = empty(rt, [rows, n], 'f32', 'window_attention_delta');
  const padPart = empty(rt, [rows, vrows, 2, hd], 'f32', 'window_attention_dbias_rows');
  const tpart = empty(rt, [Math.max(chunks, 1), heads, vrows, vrows, 2 * cx - 1], 'f32', 'window_attention_dtable_rows');
  const dbiasPart = empty(rt, [nBW, 3 * C], 'f32', 'window_attention_dbias_partial');
  const dtable = empty(rt, [tableRows, heads], 'f32', 'window_attention_dtable');
  if (rows > 0) {
    const bytes = BYTES_PER_ELEMENT[t.qs.dtype] * t.qs.size;
    const pairs = rows * vrows * vrows * cx * cx;
    rt.dispatch({
      kernel: kernel('dqTable'),
      buffers: { q: t.qs.buffer, k: t.ks.buffer, v: t.vs.buffer, qkvBias: t.bs.buffer, table: t.ts.buffer, o: t.os.buffer, lse: t.ls.buffer, dOut: t.g.buffer, dq: t.dq.buffer, delta: delta.buffer, tpart: tpart.buffer },
      params: p,
      workgroups: grid1d(chunks * heads * vrows, WG_BWD, maxWg),
      work: { flops: pairs * (6 * hd + 8), bytes: 6 * bytes },
    });
    rt.dispatch({
      kernel: kernel('dkv'),
      buffers: { q: t.qs.buffer, k: t.ks.buffer, v: t.vs.buffer, qkvBias: t.bs.buffer, table: t.ts.buffer, lse: t.ls.buffer, dOut: t.g.buffer, dk: t.dk.buffer, dv: t.dv.buffer, delta: delta.buffer, padPart: padPart.buffer },
      params: p,
      workgroups: grid1d(nBW * heads * vrows, WG_BWD, maxWg),
      work: { flops: pairs * (8 * hd + 8), bytes: 6 * bytes },
    });
    rt.dispatch({
      kernel: kernel('dbias'),
      buffers: { padPart: padPart.buffer, dbiasPart: dbiasPart.buffer },
      params: p,
      workgroups: grid1d(rows, WG_BWD, maxWg),
      work: { flops: padPart.size, bytes: 4 * padPart.size },
    });
  }
  rt.dispatch({
    kernel: kernel('dtableSum'),
    buffers: { tpart: tpart.buffer, dtable: dtable.buffer },
    params: p,
    workgroups: grid1d(tableRows * heads, WG_BWD, maxWg),
    work: { flops: tpart.size, bytes: 4 * tpart.size },
  });
  delta.dispose();
  padPart.dispose();
  tpart.dispose();
  const dbias = sum(dbiasPart, [0]);
  dbiasPart.dispose();
  return [dtable, dbias];
}

/**
 * The order in which dqTable's lanes take the query rows of a window: rows that are all padding in
 * more windows come later (ties by row), so that in a window with padding the dead rows sit together
 * and whole SIMD groups of lanes skip their keys (a CPU adapter runs 8 neighbouring lanes as one).
 * Row r is dead in a window when none of its tokens r·cx … r·cx + cx − 1 (< n) is a real voxel, as
 * the kernel decides it. Null (lane order) when the rows do not fit the uniform's 64 slots.
 */
export function dqRowOrder(p: Record<string, number>, cx: number, vrows: number): number[] | null {
  if (vrows > 64) return null;
  const P = (k: string) => p[k]!;
  const dead = new Array<number>(vrows).fill(0);
  for (let win = 0; win < P('nWin'); win++) {
    const o = [Math.floor(win / (P('nww') * P('nwh'))) * P('wd'), (Math.floor(win / P('nww')) % P('nwh')) * P('wh'), (win % P('nww')) * P('ww')];
    for (let r = 0; r < vrows; r++) {
      let live = false;
      for (let x = 0; x < cx && !live; x++) {
        const t = r * cx + x;
        if (t >= P('n')) break;
        const d = (o[0]! + Math.floor(t / (P('wh') * P('ww'))) + P('sd')) % P('Dp');
        const h = (o[1]! + (Math.floor(t / P('ww')) % P('wh')) + P('sh')) % P('Hp');
        const w = (o[2]! + (t % P('ww')) + P('sw')) % P('Wp');
        live = d < P('D') && h < P('H') && w < P('W');
      }
      if (!live) dead[r]!++;
    }
  }
  return Array.from({ length: vrows }, (_, r) => r).sort((a, b) => dead[a]! - dead[b]! || a - b);
}

function toType(g: Tensor, dtype: Tensor['dtype']): Tensor {
  if (g.dtype === dtype) return g;
  const out = cast(g, dtype);
  g.dispose();
  return out;
}
