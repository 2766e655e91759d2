/**
 * Gradient norms and clipping on the GPU, deterministic (fixed-order reductions, so the same
 * gradients give bitwise the same norm and coefficients on every run).
 *
 * `record()` dispatches the norm kernels; the results land in a small `control` buffer on the GPU
 * holding the norms, a finiteness flag and one gradient multiplier per tensor (clip coefficient ·
 * 1/loss-scale). AdamW reads that buffer directly (`update({ control })`), so clipping needs no
 * readback; `read()` is the one small readback per step, for logging and for skipping a step (and
 * backing off the loss scale) when a gradient is not finite.
 */
import code from '../../shaders/grad_norm.wgsl';
import type { ShaderFile } from '../gpu/kernel.js';
import { ReefError } from '../gpu/errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { gridRows } from '../ops/geometry.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor/tensor.js';
import { elementPieces, pieceSlice } from './pieces.js';

export const GRAD_NORM: ShaderFile = { name: 'grad_norm', code };
const WG = 256;
const ITEMS = 16;
/** Elements per partial sum (one workgroup of chunk_sums). */
export const GRAD_NORM_CHUNK = WG * ITEMS;
/** Offset of the per-tensor entries in the control buffer. */
const HEAD = 4;

export type ClipMode = 'global' | 'per-tensor';

export interface GradClipOptions {
  /** Clip to this L2 norm (default 3.0); 0 or Infinity turns clipping off (norms are still computed). */
  maxNorm?: number;
  /** 'global' (default): one coefficient from the norm of all gradients; 'per-tensor': each tensor by its own norm (DINO v1). */
  mode?: ClipMode;
  /** Added to the norm in max_norm/(‖g‖+eps) (default 1e-6). */
  eps?: number;
}

/** Where the optimizer finds its gradient multipliers in the control buffer. */
export interface GradControl {
  buffer: GPUBuffer;
  /** Index of the 1/0 "every gradient finite" flag; the optimizer skips the step on 0. */
  okIndex: number;
  /** Index of the multiplier of parameter i (in the order given to `record`). */
  scaleIndex(i: number): number;
  /** Number of tensors the buffer was computed for. */
  count: number;
}

export interface GradNormStats {
  /** L2 norm of all gradients (after removing the loss scale). */
  norm: number;
  /** Every gradient element finite and the norm finite: the step may be applied. */
  finite: boolean;
  /** The global clip coefficient min(1, maxNorm/(norm+eps)) (1 when clipping is off). */
  clipCoef: number;
  /** Per tensor: L2 norm (unscaled). */
  tensorNorms: Float32Array;
  /** Per tensor: the multiplier applied to its gradient (coefficient · invScale; 0 when not finite). */
  multipliers: Float32Array;
  /** Indices of the tensors holding a NaN or ±Inf. */
  nonFiniteTensors: number[];
}

interface Layout {
  key: string;
  /** First partial and count of partials per tensor. */
  ranges: Uint32Array;
  partials: number;
}

export class GradClipper {
  readonly maxNorm: number;
  readonly mode: ClipMode;
  readonly eps: number;
  private layout: Layout | null = null;
  private partials: GPUBuffer | null = null;
  private partialBad: GPUBuffer | null = null;
  private rangesBuf: GPUBuffer | null = null;
  private sums: GPUBuffer | null = null;
  private sumBad: GPUBuffer | null = null;
  private ctl: GPUBuffer | null = null;
  private count = -1;
  private recorded = false;

  constructor(
    readonly rt: Runtime,
    opts: GradClipOptions = {},
  ) {
    this.maxNorm = opts.maxNorm ?? 3;
    this.mode = opts.mode ?? 'global';
    this.eps = opts.eps ?? 1e-6;
    if (!(this.maxNorm >= 0)) throw new ReefError(`GradClipper: maxNorm ${this.maxNorm} must be ≥ 0`);
    if (this.mode !== 'global' && this.mode !== 'per-tensor') throw new ReefError(`GradClipper: unknown mode '${String(this.mode)}'`);
  }

  /**
   * Records the norm of each parameter's `.grad` (a parameter without one counts as zero) and the
   * clip multipliers. `invScale` (1/loss scale) is folded into the norms and the multipliers.
   */
  record(params: readonly Tensor[], opts: { invScale?: number } = {}): GradControl {
    return this.recordGrads(
      params.map((p) => p.grad),
      opts,
    );
  }

  /** As `record`, from the gradient tensors themselves (null = absent). */
  recordGrads(grads: readonly (Tensor | null)[], opts: { invScale?: number } = {}): GradControl {
    const rt = this.rt;
    const invScale = opts.invScale ?? 1;
    if (!(invScale > 0 && Number.isFinite(invScale))) throw new ReefError(`GradClipper: invScale ${invScale} must be positive and finite`);
    for (const g of grads) {
      if (g && g.rt !== rt) throw new ReefError('GradClipper: a gradient belongs to another runtime');
    }
    const layout = this.prepare(grads);
    const T = grads.length;
    const common = { perTensor: 0, maxNorm: 0, eps: 0, invScale: 1 };
    grads.forEach((g, t) => {
      if (!g || g.size === 0) return;
      const E = BYTES_PER_ELEMENT[g.dtype];
      const base = layout.ranges[2 * t]!;
      for (const piece of elementPieces(rt, g.size, E, GRAD_NORM_CHUNK)) {
        const chunks = Math.ceil(piece.count / GRAD_NORM_CHUNK);
        rt.dispatch({
          kernel: { shader: GRAD_NORM, entry: 'chunk_sums', elem: g.dtype },
          buffers: { src: pieceSlice(g.buffer, piece, E), partials: this.partials!, partialBad: this.partialBad! },
          params: { ...common, n: piece.count, chunks, base: base + piece.first / GRAD_NORM_CHUNK },
          workgroups: gridRows(chunks, rt.caps.maxWorkgroupsPerDimension),
          work: { flops: 2 * piece.count, bytes: piece.count * E },
        });
      }
    });
    if (T > 0) {
      rt.dispatch({
        kernel: { shader: GRAD_NORM, entry: 'tensor_sums' },
        buffers: { ranges: this.rangesBuf!, partialsIn: this.partials!, partialBadIn: this.partialBad!, sums: this.sums!, sumBad: this.sumBad! },
        params: { ...common, n: T, chunks: 0, base: 0 },
        workgroups: gridRows(T, rt.caps.maxWorkgroupsPerDimension),
        work: { flops: layout.partials, bytes: 8 * layout.partials },
      });
    }
    const clip = Number.isFinite(this.maxNorm) ? this.maxNorm : 0;
    rt.dispatch({
      kernel: { shader: GRAD_NORM, entry: 'finish' },
      buffers: { sumsIn: this.sums!, sumBadIn: this.sumBad!, ctl: this.ctl! },
      params: { n: T, chunks: 0, base: 0, perTensor: this.mode === 'per-tensor' ? 1 : 0, maxNorm: clip, eps: this.eps, invScale },
      workgroups: [1],
      work: { flops: 4 * T, bytes: 20 * T },
    });
    this.recorded = true;
    return this.control;
  }

  /** The control buffer of the last `record` (valid until the next one). */
  get control(): GradControl {
    if (!this.ctl || !this.recorded) throw new ReefError('GradClipper: nothing recorded yet');
    return { buffer: this.ctl, okIndex: 1, scaleIndex: (i) => HEAD + i, count: this.count };
  }

  /**
   * Reads back the last `record`'s results (one readback of 4 + 3·T floats). The copy is recorded
   * when this is called, so call it before the next `record` reuses the buffer.
   */
  async read(): Promise<GradNormStats> {
    const T = this.count;
    const ctl = this.control.buffer;
    const v = new Float32Array(await this.rt.read(ctl, 0, 4 * (HEAD + 3 * T)));
    const flags = v.subarray(HEAD + 2 * T, HEAD + 3 * T);
    const nonFiniteTensors: number[] = [];
    flags.forEach((f, i) => {
      if (f !== 0) nonFiniteTensors.push(i);
    });
    return {
      norm: v[0]!,
      finite: v[1] === 1,
      clipCoef: v[2]!,
      multipliers: v.slice(HEAD, HEAD + T),
      tensorNorms: v.slice(HEAD + T, HEAD + 2 * T),
      nonFiniteTensors,
    };
  }

  dispose(): void {
    for (const b of [this.partials, this.partialBad, this.rangesBuf, this.sums, this.sumBad, this.ctl]) if (b) this.rt.pool.release(b);
    this.partials = this.partialBad = this.rangesBuf = this.sums = this.sumBad = this.ctl = null;
    this.layout = null;
    this.count = -1;
    this.recorded = false;
  }

  /** (Re)allocates the work buffers when the set of gradient sizes changes. */
  private prepare(grads: readonly (Tensor | null)[]): Layout {
    const key = grads.map((g) => (g && g.size > 0 ? `${g.size}` : '0')).join(',');
    if (this.layout?.key === key) return this.layout;
    this.dispose();
    const T = grads.length;
    const ranges = new Uint32Array(Math.max(2 * T, 4));
    let total = 0;
    grads.forEach((g, t) => {
      const n = g && g.size > 0 ? Math.ceil(g.size / GRAD_NORM_CHUNK) : 0;
      ranges[2 * t] = total;
      ranges[2 * t + 1] = n;
      total += n;
    });
    const pool = this.rt.pool;
    // Sizes at least 16 bytes: a binding may not be empty.
    const words = (n: number) => Math.max(4, n) * 4;
    this.partials = pool.acquire(words(total), 'grad-norm partials');
    this.partialBad = pool.acquire(words(total), 'grad-norm flags');
    this.rangesBuf = pool.acquire(ranges.byteLength, 'grad-norm ranges');
    this.sums = pool.acquire(words(T), 'grad-norm sums');
    this.sumBad = pool.acquire(words(T), 'grad-norm sum flags');
    this.ctl = pool.acquire(words(HEAD + 3 * T), 'grad-norm control');
    this.rt.write(this.rangesBuf, ranges, 0, true);
    this.count = T;
    this.layout = { key, ranges, partials: total };
    return this.layout;
  }
}

/** The multiplier AdamW applies for a clip coefficient and loss scale, as the GPU computes it (f32). */
export function clipCoefficient(norm: number, maxNorm: number, eps = 1e-6): number {
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm)) return 1;
  return Math.min(1, maxNorm / (norm + eps));
}

