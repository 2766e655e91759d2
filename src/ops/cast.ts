/** Conversion between f32 and f16 storage (f16 needs the adapter's shader-f16). */
import code from '../../shaders/cast.wgsl';
import type { ShaderFile } from '../gpu/kernel.js';
import { ReefError } from '../gpu/errors.js';
import { empty } from '../tensor/create.js';
import { record } from '../tensor/tape.js';
import type { DType, Tensor } from '../tensor/tensor.js';
import { grid1d } from './geometry.js';
import { reshape } from './shape.js';

export const CAST: ShaderFile = { name: 'cast', code };

export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return reshape(x, x.shape);
  if (!x.rt.caps.f16) throw new ReefError('cast: this adapter has no shader-f16');
  const out = empty(x.rt, x.shape, dtype, `cast_${dtype}`);
  const toHalf = dtype === 'f16';
  if (x.size > 0) {
    x.rt.dispatch({
      kernel: { shader: CAST, entry: toHalf ? 'to_f16' : 'to_f32' },
      buffers: toHalf ? { src32: x.buffer, dst16: out.buffer } : { src16: x.buffer, dst32: out.buffer },
      params: { n: x.size },
      workgroups: grid1d(x.size, 256, x.rt.caps.maxWorkgroupsPerDimension),
      work: { bytes: 6 * x.size },
    });
  }
  const from = x.dtype;
  return record('cast', out, [x], [], (g) => [cast(g, from)]);
}
