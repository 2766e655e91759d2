/** Softmax and log-softmax over the last axis. */
import code from '../../shaders/softmax.wgsl';
import type { ShaderFile } from '../gpu/kernel.js';
import { ReefError } from '../gpu/errors.js';
import { empty } from '../tensor/create.js';
import { record } from '../tensor/tape.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor/tensor.js';
import { gridRows } from './geometry.js';

export const SOFTMAX: ShaderFile = { name: 'softmax', code };

function run(entry: 'forward' | 'backward', log: boolean, x: Tensor, grad: Tensor | null): Tensor {
  const C = x.shape[x.ndim - 1];
  if (!C) throw new ReefError(`${log ? 'logSoftmax' : 'softmax'}: ${x.describe()} has an empty last axis`);
  const rows = x.size / C;
  const out = empty(x.rt, x.shape, x.dtype, log ? 'log_softmax' : 'softmax');
  x.rt.dispatch({
    kernel: { shader: SOFTMAX, entry, elem: x.dtype, overrides: { LOG: log } },
    buffers: entry === 'forward' ? { x: x.buffer, out: out.buffer } : { x: x.buffer, grad: grad!.buffer, out: out.buffer },
    params: { rows, C },
    workgroups: gridRows(rows, x.rt.caps.maxWorkgroupsPerDimension),
    work: { flops: 5 * x.size, bytes: (entry === 'forward' ? 3 : 4) * x.size * BYTES_PER_ELEMENT[x.dtype] },
  });
  return out;
}

export function softmax(x: Tensor): Tensor {
  const y = run('forward', false, x, null);
  return record('softmax', y, [x], [y], (g, [ys]) => [run('backward', false, ys!, g)]);
}

export function logSoftmax(x: Tensor): Tensor {
  const y = run('forward', true, x, null);
  return record('logSoftmax', y, [x], [y], (g, [ys]) => [run('backward', true, ys!, g)]);
}
