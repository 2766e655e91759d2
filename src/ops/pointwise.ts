/** Pointwise ops on contiguous tensors: scale/shift, exact GELU, fill, in-place accumulation. */
import code from '../../shaders/pointwise.wgsl';
import type { ShaderFile } from '../gpu/kernel.js';
import { ReefError } from '../gpu/errors.js';
import { empty } from '../tensor/create.js';
import { record } from '../tensor/tape.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor/tensor.js';
import { grid1d, sameShape } from './geometry.js';
import { bindRange, elementRuns, overBindingLimit } from './binding-range.js';
import type { BufferSlice } from '../gpu/runtime.js';

export const POINTWISE: ShaderFile = { name: 'pointwise', code };
const WG = 256;

function run(entry: string, out: Tensor, a: Tensor | null, b: Tensor | null, alpha = 0, beta = 0, flopsPerElem = 1): void {
  const rt = out.rt;
  const n = out.size;
  const E = BYTES_PER_ELEMENT[out.dtype];
  const touched = 1 + (a ? 1 : 0) + (b ? 1 : 0);
  const dispatch = (first: number, count: number, slice: (t: Tensor) => GPUBuffer | BufferSlice) => {
    const buffers: Record<string, GPUBuffer | BufferSlice> = { out: slice(out) };
    if (a) buffers.a = slice(a);
    if (b) buffers.b = slice(b);
    rt.dispatch({
      kernel: { shader: POINTWISE, entry, elem: out.dtype },
      buffers,
      params: { n: count, alpha, beta },
      workgroups: grid1d(count, WG, rt.caps.maxWorkgroupsPerDimension),
      work: { flops: count * flopsPerElem, bytes: count * touched * E },
    });
  };
  if (!overBindingLimit(rt, n * E)) {
    dispatch(0, n, (t) => t.buffer);
    return;
  }
  // Over the binding limit: aligned runs of elements, the same run of every operand.
  for (const t of [a, b]) if (t && t.size !== n) throw new ReefError(`pointwise ${entry}: ${t.describe()} and ${out.describe()} differ in size`);
  for (const [first, count] of elementRuns(rt, n, E)) dispatch(first, count, (t) => bindRange(t, first, first + count).slice);
}

/** alpha·x + beta */
export function scale(x: Tensor, alpha: number, beta = 0): Tensor {
  const out = empty(x.rt, x.shape, x.dtype, 'scale');
  run('scale_shift', out, x, null, alpha, beta, 2);
  return record('scale', out, [x], [], (g) => [scale(g, alpha)]);
}

export function neg(x: Tensor): Tensor {
  return scale(x, -1);
}

/** Exact GELU, x·Φ(x) (PyTorch's default, not the tanh approximation). */
export function gelu(x: Tensor): Tensor {
  const out = empty(x.rt, x.shape, x.dtype, 'gelu');
  run('gelu', out, x, null, 0, 0, 20);
  return record('gelu', out, [x], [x], (g, [xs]) => [geluBackward(xs!, g)]);
}

export function geluBackward(x: Tensor, g: Tensor): Tensor {
  const out = empty(x.rt, x.shape, x.dtype, 'gelu_backward');
  run('gelu_backward', out, x, g, 0, 0, 25);
  return out;
}

/** LeakyReLU: x where x ≥ 0, slope·x elsewhere (MONAI's UnetResBlock uses slope 0.01). */
export function leakyRelu(x: Tensor, slope = 0.01): Tensor {
  const out = empty(x.rt, x.shape, x.dtype, 'leaky_relu');
  run('leaky_relu', out, x, null, slope, 0, 1);
  return record('leakyRelu', out, [x], [x], (g, [xs]) => {
    const gx = empty(x.rt, x.shape, x.dtype, 'leaky_relu_backward');
    run('leaky_relu_backward', gx, xs!, g, slope, 0, 1);
    return [gx];
  });
}

/** Sets every element of `t` to `value`, in place. */
export function fill(t: Tensor, value: number): Tensor {
  run('fill', t, null, null, value);
  return t;
}

/** dst += alpha·src, in place (gradient accumulation). Not recorded on the tape. */
export function accumulate(dst: Tensor, src: Tensor, alpha = 1): void {
  if (!sameShape(dst.shape, src.shape) || dst.dtype !== src.dtype) {
    throw new ReefError(`accumulate: ${dst.describe()} += ${src.describe()} needs equal shapes and types`);
  }
  run('accumulate', dst, src, null, alpha, 0, 2);
}
