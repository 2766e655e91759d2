/**
 * Teacher-side ops of DINO / iBOT. None is recorded on the tape (the teacher gets no gradient).
 *   centeredSoftmax:  q = softmax((t − center) / τ_t) per row
 *   updateCenter:     center ← m·center + (1 − m)·mean over rows of t   (in place, deterministic)
 */
import code from '../../shaders/dino_teacher.wgsl';
import type { ShaderFile } from '../gpu/kernel.js';
import { ReefError } from '../gpu/errors.js';
import { empty } from '../tensor/create.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor/tensor.js';
import { grid1d, gridRows } from './geometry.js';

export const DINO_TEACHER: ShaderFile = { name: 'dino_teacher', code };

function check(op: string, t: Tensor, center: Tensor): [number, number] {
  if (t.ndim !== 2) throw new ReefError(`${op}: teacher logits ${t.describe()} must be 2-D [rows, classes]`);
  const [rows, C] = t.shape as [number, number];
  if (center.dtype !== 'f32' || center.size !== C) throw new ReefError(`${op}: center ${center.describe()} must be f32 with ${C} elements`);
  if (center.rt !== t.rt) throw new ReefError(`${op}: tensors belong to different runtimes`);
  return [rows, C];
}

/** softmax((t − center)/temperature) over the last axis; center is f32 [C] (or [1, C]). */
export function centeredSoftmax(t: Tensor, center: Tensor, temperature: number): Tensor {
  const [rows, C] = check('centeredSoftmax', t, center);
  if (!(temperature > 0)) throw new ReefError(`centeredSoftmax: temperature must be > 0, got ${temperature}`);
  const rt = t.rt;
  const out = empty(rt, t.shape, t.dtype, 'teacher_probs');
  if (rows * C === 0) return out;
  rt.dispatch({
    kernel: { shader: DINO_TEACHER, entry: 'softmax_centered', elem: t.dtype },
    buffers: { t: t.buffer, center: center.buffer, out: out.buffer },
    params: { rows, C, invTemp: 1 / temperature, momentum: 0 },
    workgroups: gridRows(rows, rt.caps.maxWorkgroupsPerDimension),
    work: { flops: 8 * rows * C, bytes: 4 * rows * C * BYTES_PER_ELEMENT[t.dtype] },
  });
  return out;
}

/** center ← momentum·center + (1 − momentum)·mean_r t[r] in place. No rows: left unchanged. */
export function updateCenter(center: Tensor, t: Tensor, momentum: number): void {
  const [rows, C] = check('updateCenter', t, center);
  if (!(momentum >= 0 && momentum <= 1)) throw new ReefError(`updateCenter: momentum must be in [0, 1], got ${momentum}`);
  if (rows === 0 || C === 0) return;
  const rt = t.rt;
  rt.dispatch({
    kernel: { shader: DINO_TEACHER, entry: 'center_update', elem: t.dtype },
    buffers: { t: t.buffer, center: center.buffer },
    params: { rows, C, invTemp: 0, momentum },
    workgroups: grid1d(C, 256, rt.caps.maxWorkgroupsPerDimension),
    work: { flops: rows * C, bytes: rows * C * BYTES_PER_ELEMENT[t.dtype] + 8 * C },
  });
}
