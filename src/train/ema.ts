/** The teacher's exponential moving average of the student's weights (DINO), on the GPU in f32. */
import code from '../../shaders/ema.wgsl';
import type { ShaderFile } from '../gpu/kernel.js';
import { ReefError } from '../gpu/errors.js';
import { grid1d, sameShape } from '../ops/geometry.js';
import type { Tensor } from '../tensor/tensor.js';
import { elementPieces, pieceSlice } from './pieces.js';

export const EMA: ShaderFile = { name: 'ema', code };
const WG = 256;

/**
 * teacher[i] ← m·teacher[i] + (1−m)·student[i] for every pair, in place (one dispatch per tensor).
 * With m = 1 the teacher is left bitwise unchanged and no work is recorded.
 */
export function emaUpdate(teacher: readonly Tensor[], student: readonly Tensor[], momentum: number): void {
  if (teacher.length !== student.length) throw new ReefError(`emaUpdate: ${teacher.length} teacher tensors but ${student.length} student tensors`);
  if (!(momentum >= 0 && momentum <= 1)) throw new ReefError(`emaUpdate: momentum ${momentum} is not in [0, 1]`);
  teacher.forEach((t, i) => {
    const s = student[i]!;
    if (t.dtype !== 'f32' || s.dtype !== 'f32') throw new ReefError(`emaUpdate: ${t.describe()} and ${s.describe()} must both be f32`);
    if (!sameShape(t.shape, s.shape)) throw new ReefError(`emaUpdate: teacher ${t.describe()} and student ${s.describe()} differ in shape`);
    if (t.storage === s.storage) throw new ReefError(`emaUpdate: teacher ${t.describe()} shares its buffer with the student`);
  });
  if (momentum === 1) return;
  teacher.forEach((t, i) => {
    const s = student[i]!;
    const rt = t.rt;
    for (const piece of elementPieces(rt, t.size, 4)) {
      rt.dispatch({
        kernel: { shader: EMA, entry: 'main' },
        buffers: { teacher: pieceSlice(t.buffer, piece, 4), student: pieceSlice(s.buffer, piece, 4) },
        params: { n: piece.count, momentum, oneMinusMomentum: 1 - momentum },
        workgroups: grid1d(piece.count, WG, rt.caps.maxWorkgroupsPerDimension),
        work: { flops: 3 * piece.count, bytes: 12 * piece.count },
      });
    }
  });
}
