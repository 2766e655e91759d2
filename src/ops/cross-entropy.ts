/**
 * Cross entropy between soft targets and log-softmax(logits), averaged over rows:
 *   loss = mean_r −Σ_c t[r,c]·log_softmax(x[r])_c
 * (DINO/iBOT's loss with the teacher's probabilities as targets). Both inputs get gradients.
 */
import code from '../../shaders/cross_entropy.wgsl';
import type { ShaderFile } from '../gpu/kernel.js';
import { ReefError } from '../gpu/errors.js';
import { empty } from '../tensor/create.js';
import { noGrad } from '../tensor/grad-mode.js';
import { record } from '../tensor/tape.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor/tensor.js';
import { grid1d, gridRows, sameShape } from './geometry.js';
import { mean } from './reduce.js';

export const CROSS_ENTROPY: ShaderFile = { name: 'cross_entropy', code };

export function crossEntropySoft(logits: Tensor, targets: Tensor): Tensor {
  if (!sameShape(logits.shape, targets.shape) || logits.dtype !== targets.dtype || logits.ndim < 1) {
    throw new ReefError(`crossEntropySoft: logits ${logits.describe()} and targets ${targets.describe()} must have one shape and type`);
  }
  const rt = logits.rt;
  const C = logits.shape[logits.ndim - 1]!;
  const rows = C ? logits.size / C : 0;
  if (rows === 0) throw new ReefError(`crossEntropySoft: ${logits.describe()} is empty`);
  const rowLoss = empty(rt, [rows], 'f32', 'ce_row_loss');
  const stats = empty(rt, [rows, 3], 'f32', 'ce_stats');
  const params = { rows, C, n: logits.size };
  const bytes = BYTES_PER_ELEMENT[logits.dtype];
  rt.dispatch({
    kernel: { shader: CROSS_ENTROPY, entry: 'forward', elem: logits.dtype },
    buffers: { x: logits.buffer, t: targets.buffer, rowLoss: rowLoss.buffer, stats: stats.buffer },
    params,
    workgroups: gridRows(rows, rt.caps.maxWorkgroupsPerDimension),
    work: { flops: 6 * logits.size, bytes: 2 * logits.size * bytes },
  });
  const loss = noGrad(() => mean(rowLoss));
  rowLoss.dispose();
  const out = record('crossEntropySoft', loss, [logits, targets], [logits, targets, stats], (g, [xs, ts, st]) => {
    const dx = logits.requiresGrad ? empty(rt, logits.shape, logits.dtype, 'ce_dlogits') : null;
    const dt = targets.requiresGrad ? empty(rt, logits.shape, logits.dtype, 'ce_dtargets') : null;
    rt.dispatch({
      kernel: { shader: CROSS_ENTROPY, entry: 'backward', elem: logits.dtype, overrides: { WRITE_DX: dx !== null, WRITE_DT: dt !== null } },
      buffers: { x: xs!.buffer, t: ts!.buffer, gradOut: g.buffer, stats: st!.buffer, dx: dx ? dx.buffer : rt.dummy, dt: dt ? dt.buffer : rt.dummy },
      params,
      workgroups: grid1d(logits.size, 256, rt.caps.maxWorkgroupsPerDimension),
      work: { flops: 6 * logits.size, bytes: 4 * logits.size * bytes },
    });
    return [dx, dt];
  });
  stats.dispose();
  return out;
}
