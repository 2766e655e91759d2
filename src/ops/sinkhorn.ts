/**
 * Sinkhorn–Knopp teacher targets (SwAV, DINOv2's alternative to centring), from teacher logits
 * t [B, K]: Q = exp(t/τ)ᵀ normalised alternately over samples (each prototype's mass 1/K) and over
 * prototypes (each sample's mass 1/B), `iterations` times, returned as B·Qᵀ (rows sum to 1).
 * Computed in the log domain (see shaders/sinkhorn.wgsl); not recorded on the tape.
 */
import code from '../../shaders/sinkhorn.wgsl';
import type { ShaderFile } from '../gpu/kernel.js';
import { ReefError } from '../gpu/errors.js';
import { empty } from '../tensor/create.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor/tensor.js';
import { grid1d, gridRows } from './geometry.js';

export const SINKHORN: ShaderFile = { name: 'sinkhorn', code };

export function sinkhornKnopp(t: Tensor, temperature: number, iterations = 3): Tensor {
  if (t.ndim !== 2) throw new ReefError(`sinkhornKnopp: ${t.describe()} must be 2-D [samples, prototypes]`);
  if (!(temperature > 0)) throw new ReefError(`sinkhornKnopp: temperature must be > 0, got ${temperature}`);
  if (!(Number.isInteger(iterations) && iterations >= 1)) throw new ReefError(`sinkhornKnopp: iterations must be a positive integer, got ${iterations}`);
  const [B, K] = t.shape as [number, number];
  if (B === 0 || K === 0) throw new ReefError(`sinkhornKnopp: ${t.describe()} is empty`);
  const rt = t.rt;
  const alpha = empty(rt, [K], 'f32', 'sinkhorn_alpha');
  const beta = empty(rt, [B], 'f32', 'sinkhorn_beta');
  const out = empty(rt, [B, K], t.dtype, 'sinkhorn_q');
  const params = { rows: B, C: K, n: B * K, invTemp: 1 / temperature };
  const bytes = B * K * BYTES_PER_ELEMENT[t.dtype];
  const maxWg = rt.caps.maxWorkgroupsPerDimension;
  for (let it = 0; it < iterations; it++) {
    rt.dispatch({
      kernel: { shader: SINKHORN, entry: 'proto_step', elem: t.dtype, overrides: { FIRST: it === 0 } },
      buffers: { t: t.buffer, alpha: alpha.buffer, beta: beta.buffer },
      params,
      workgroups: grid1d(K, 256, maxWg),
      work: { flops: 6 * B * K, bytes },
    });
    rt.dispatch({
      kernel: { shader: SINKHORN, entry: 'sample_step', elem: t.dtype },
      buffers: { t: t.buffer, alpha: alpha.buffer, beta: beta.buffer },
      params,
      workgroups: gridRows(B, maxWg),
      work: { flops: 6 * B * K, bytes },
    });
  }
  rt.dispatch({
    kernel: { shader: SINKHORN, entry: 'finish', elem: t.dtype },
    buffers: { t: t.buffer, alpha: alpha.buffer, beta: beta.buffer, out: out.buffer },
    params,
    workgroups: grid1d(B * K, 256, maxWg),
    work: { flops: 4 * B * K, bytes: 2 * bytes },
  });
  alpha.dispose();
  beta.dispose();
  return out;
}
