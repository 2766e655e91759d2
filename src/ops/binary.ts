/** a ∘ b with NumPy broadcasting, ∘ ∈ {+, −, ×, ÷}; gradients are summed back over broadcast axes. */
import code from '../../shaders/binary.wgsl';
import type { ShaderFile } from '../gpu/kernel.js';
import { ReefError } from '../gpu/errors.js';
import { empty } from '../tensor/create.js';
import { noGrad } from '../tensor/grad-mode.js';
import { record } from '../tensor/tape.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor/tensor.js';
import { broadcastShapes, broadcastStrides, grid1d, pack8, sameShape } from './geometry.js';
import { neg } from './pointwise.js';
import { bindRange, elementRuns, overBindingLimit } from './binding-range.js';
import type { BufferSlice } from '../gpu/runtime.js';
import { sumTo } from './reduce.js';

export const BINARY: ShaderFile = { name: 'binary', code };

const OPS = { add: 0, sub: 1, mul: 2, div: 3 } as const;
type BinaryOp = keyof typeof OPS;

function binaryKernel(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  if (a.dtype !== b.dtype) throw new ReefError(`${op}: element types differ (${a.describe()}, ${b.describe()})`);
  if (a.rt !== b.rt) throw new ReefError(`${op}: tensors belong to different runtimes`);
  const shape = broadcastShapes(a.shape, b.shape, op);
  const out = empty(a.rt, shape, a.dtype, op);
  const n = out.size;
  if (n === 0) return out;
  const plain = sameShape(a.shape, shape) && sameShape(b.shape, shape);
  const rt = a.rt;
  const E = BYTES_PER_ELEMENT[a.dtype];
  const dispatch = (count: number, buffers: Record<'a' | 'b' | 'out', GPUBuffer | BufferSlice>) =>
    rt.dispatch({
      kernel: { shader: BINARY, entry: 'main', elem: a.dtype, overrides: { OP: OPS[op], BROADCAST: !plain } },
      buffers,
      params: {
        n: count,
        rank: shape.length,
        shape: pack8(shape, op),
        strideA: pack8(broadcastStrides(a.shape, shape), op),
        strideB: pack8(broadcastStrides(b.shape, shape), op),
      },
      workgroups: grid1d(count, 256, rt.caps.maxWorkgroupsPerDimension),
      work: { flops: count, bytes: 3 * count * E },
    });
  if (!overBindingLimit(rt, n * E)) {
    dispatch(n, { a: a.buffer, b: b.buffer, out: out.buffer });
    return out;
  }
  // Over the binding limit: equal shapes go in aligned runs of elements (residual adds of large maps).
  if (!plain) {
    out.dispose();
    throw new ReefError(`${op}: ${a.describe()} ∘ ${b.describe()} exceeds the adapter's maxStorageBufferBindingSize (${rt.caps.maxStorageBufferBindingSize} bytes); only equal shapes are split into pieces`);
  }
  for (const [first, count] of elementRuns(rt, n, E)) {
    const range = (t: Tensor) => bindRange(t, first, first + count).slice;
    dispatch(count, { a: range(a), b: range(b), out: range(out) });
  }
  return out;
}

export function add(a: Tensor, b: Tensor): Tensor {
  const out = binaryKernel('add', a, b);
  return record('add', out, [a, b], [], (g) => [a.requiresGrad ? sumTo(g, a.shape) : null, b.requiresGrad ? sumTo(g, b.shape) : null]);
}

export function sub(a: Tensor, b: Tensor): Tensor {
  const out = binaryKernel('sub', a, b);
  return record('sub', out, [a, b], [], (g) => {
    let gb: Tensor | null = null;
    if (b.requiresGrad) {
      const s = sumTo(g, b.shape);
      gb = neg(s);
      s.dispose();
    }
    return [a.requiresGrad ? sumTo(g, a.shape) : null, gb];
  });
}

export function mul(a: Tensor, b: Tensor): Tensor {
  const out = binaryKernel('mul', a, b);
  return record('mul', out, [a, b], [a, b], (g, [as, bs]) => [
    a.requiresGrad ? combinedTo('mul', g, bs!, a.shape) : null,
    b.requiresGrad ? combinedTo('mul', g, as!, b.shape) : null,
  ]);
}

export function div(a: Tensor, b: Tensor): Tensor {
  const out = binaryKernel('div', a, b);
  return record('div', out, [a, b], [a, b], (g, [as, bs]) =>
    noGrad(() => {
      const ga = a.requiresGrad ? combinedTo('div', g, bs!, a.shape) : null;
      let gb: Tensor | null = null;
      if (b.requiresGrad) {
        // ∂(a/b)/∂b = −a/b²
        const q = binaryKernel('div', as!, bs!);
        const q2 = binaryKernel('div', q, bs!);
        const s = combinedTo('mul', g, q2, b.shape);
        gb = neg(s);
        for (const x of [q, q2, s]) x.dispose();
      }
      return [ga, gb];
    }),
  );
}

/** Σ over the broadcast axes of g ∘ other, back to `shape` (the gradient of a broadcast product). */
function combinedTo(op: 'mul' | 'div', g: Tensor, other: Tensor, shape: readonly number[]): Tensor {
  const t = binaryKernel(op, g, other);
  const r = sumTo(t, shape);
  t.dispose();
  return r;
}
