/**
 * The student side of DINO / iBOT: a weighted sum over rows of the cross entropy between teacher
 * probabilities and the student's tempered log-softmax,
 *   loss = Σ_r w_r · (−Σ_k target_rk · log_softmax(s_r / τ)_k),
 * the temperature fused into the kernel and the targets read in place. The teacher is a constant
 * (detached): only the student logits get a gradient.
 */
import code from '../../shaders/tempered_cross_entropy.wgsl';
import type { ShaderFile } from '../gpu/kernel.js';
import { ReefError } from '../gpu/errors.js';
import { empty } from '../tensor/create.js';
import { noGrad } from '../tensor/grad-mode.js';
import { record } from '../tensor/tape.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor/tensor.js';
import { grid1d, gridRows } from './geometry.js';
import { sum } from './reduce.js';

export const TEMPERED_CROSS_ENTROPY: ShaderFile = { name: 'tempered_cross_entropy', code };

/** DINO's pairing: student rows are views × batch (view-major) from view `firstView` on; view v
 * of sample b is trained on Σ_{g < teachers, g ≠ v} teacher[g·batch + b]. */
export interface ViewPairing {
  batch: number;
  firstView: number;
  teachers: number;
}

export interface TemperedCrossEntropyOptions {
  /** Student temperature τ (> 0). */
  temperature: number;
  /** Constant factor on every row (default 1). */
  weight?: number;
  /** Per-row factors, f32 [rows] (iBOT's 1/#masked per image). */
  rowWeights?: Tensor | null;
  /** DINO's view pairing; without it target row r is teacher row r. */
  pairing?: ViewPairing | null;
}

export function temperedCrossEntropy(student: Tensor, teacher: Tensor, opts: TemperedCrossEntropyOptions): Tensor {
  const fail = (why: string): never => {
    throw new ReefError(`temperedCrossEntropy: student ${student.describe()}, teacher ${teacher.describe()}: ${why}`);
  };
  if (student.ndim !== 2 || teacher.ndim !== 2) fail('both must be 2-D [rows, classes]');
  if (student.dtype !== teacher.dtype) fail('element types differ');
  if (student.rt !== teacher.rt) fail('different runtimes');
  const [rows, C] = student.shape as [number, number];
  if (teacher.shape[1] !== C) fail('class counts differ');
  if (rows === 0 || C === 0) fail('empty');
  if (!(opts.temperature > 0)) fail(`temperature must be > 0, got ${opts.temperature}`);
  const pairing = opts.pairing ?? null;
  if (pairing) {
    const { batch, firstView, teachers } = pairing;
    if (!(Number.isInteger(batch) && batch > 0 && rows % batch === 0)) fail(`pairing batch ${batch} must divide the student rows`);
    if (!(Number.isInteger(firstView) && firstView >= 0 && Number.isInteger(teachers) && teachers > 0)) fail('pairing needs integer firstView ≥ 0 and teachers > 0');
    if (teacher.shape[0] !== teachers * batch) fail(`the teacher needs ${teachers}·${batch} rows`);
  } else if (teacher.shape[0] !== rows) fail('row counts differ (no pairing given)');
  const w = opts.rowWeights ?? null;
  if (w && (w.ndim !== 1 || w.shape[0] !== rows || w.dtype !== 'f32')) fail(`rowWeights ${w.describe()} must be f32[${rows}]`);

  const rt = student.rt;
  const params = {
    rows,
    C,
    n: rows * C,
    invTemp: 1 / opts.temperature,
    weight: opts.weight ?? 1,
    batch: pairing?.batch ?? 1,
    firstView: pairing?.firstView ?? 0,
    teachers: pairing?.teachers ?? 0,
  };
  const overrides = { PAIRED: pairing !== null, HAS_WEIGHTS: w !== null };
  const bytes = BYTES_PER_ELEMENT[student.dtype];
  const readsPerElem = pairing ? 1 + pairing.teachers : 2;
  const rowLoss = empty(rt, [rows], 'f32', 'tce_row_loss');
  const stats = empty(rt, [rows, 3], 'f32', 'tce_stats');
  rt.dispatch({
    kernel: { shader: TEMPERED_CROSS_ENTROPY, entry: 'forward', elem: student.dtype, overrides },
    buffers: { s: student.buffer, q: teacher.buffer, weights: w ? w.buffer : rt.dummy, rowLoss: rowLoss.buffer, stats: stats.buffer },
    params,
    workgroups: gridRows(rows, rt.caps.maxWorkgroupsPerDimension),
    work: { flops: 8 * rows * C, bytes: (2 + readsPerElem) * rows * C * bytes },
  });
  const loss = noGrad(() => sum(rowLoss));
  rowLoss.dispose();
  const saved = w ? [student, teacher, stats, w] : [student, teacher, stats];
  const out = record('temperedCrossEntropy', loss, [student], saved, (g, [ss, qs, st, ws]) => {
    const ds = empty(rt, student.shape, student.dtype, 'tce_dstudent');
    rt.dispatch({
      kernel: { shader: TEMPERED_CROSS_ENTROPY, entry: 'backward', elem: student.dtype, overrides },
      buffers: { s: ss!.buffer, q: qs!.buffer, weights: ws ? ws.buffer : rt.dummy, gradOut: g.buffer, stats: st!.buffer, ds: ds.buffer },
      params,
      workgroups: grid1d(rows * C, 256, rt.caps.maxWorkgroupsPerDimension),
      work: { flops: 6 * rows * C, bytes: (1 + readsPerElem) * rows * C * bytes },
    });
    return [ds];
  });
  stats.dispose();
  return out;
}
