/**
 * Epps–Pulley normality statistic of each column of x [N, M] (one random slice per column), against
 * N(0, 1), by the trapezoid rule on t ∈ [0, tMax] with `knots` points and weight exp(−t²/2):
 *   T_m = N·Σ_j w_j·((mean_n cos(t_j x_nm) − e^{−t_j²/2})² + (mean_n sin(t_j x_nm))²),
 * returned as the mean over columns (a scalar), with its gradient w.r.t. x.
 */
import code from '../../shaders/sigreg.wgsl';
import type { ShaderFile } from '../gpu/kernel.js';
import { ReefError } from '../gpu/errors.js';
import { empty } from '../tensor/create.js';
import { noGrad } from '../tensor/grad-mode.js';
import { record } from '../tensor/tape.js';
import type { Tensor } from '../tensor/tensor.js';
import { grid1d } from './geometry.js';
import { sum } from './reduce.js';

export const SIGREG: ShaderFile = { name: 'sigreg', code };
const MAX_KNOTS = 64;

export interface EppsPulleyOptions {
  /** Upper end of the integration grid (default 3). */
  tMax?: number;
  /** Grid points including both ends (default 17). */
  knots?: number;
}

export function eppsPulley(x: Tensor, opts: EppsPulleyOptions = {}): Tensor {
  if (x.ndim !== 2 || x.dtype !== 'f32') throw new ReefError(`eppsPulley: ${x.describe()} must be f32 [samples, slices]`);
  const [N, M] = x.shape as [number, number];
  if (N === 0 || M === 0) throw new ReefError(`eppsPulley: ${x.describe()} is empty`);
  const tMax = opts.tMax ?? 3;
  const knots = opts.knots ?? 17;
  if (!(Number.isInteger(knots) && knots >= 2 && knots <= MAX_KNOTS)) throw new ReefError(`eppsPulley: knots must be an integer in [2, ${MAX_KNOTS}], got ${knots}`);
  if (!(tMax > 0)) throw new ReefError(`eppsPulley: tMax must be > 0, got ${tMax}`);
  const rt = x.rt;
  const params = { N, M, n: N * M, knots, dt: tMax / (knots - 1), scale: 1 / M };
  const stat = empty(rt, [M], 'f32', 'epps_pulley_stat');
  const cs = empty(rt, [M, knots, 2], 'f32', 'epps_pulley_cs');
  rt.dispatch({
    kernel: { shader: SIGREG, entry: 'forward' },
    buffers: { x: x.buffer, stat: stat.buffer, cs: cs.buffer },
    params,
    workgroups: grid1d(M, 64, rt.caps.maxWorkgroupsPerDimension),
    work: { flops: 40 * N * M * knots, bytes: 4 * N * M },
  });
  const loss = noGrad(() => sum(stat));
  stat.dispose();
  const out = record('eppsPulley', loss, [x], [x, cs], (g, [xs, c]) => {
    const dx = empty(rt, x.shape, 'f32', 'epps_pulley_dx');
    rt.dispatch({
      kernel: { shader: SIGREG, entry: 'backward' },
      buffers: { x: xs!.buffer, gradOut: g.buffer, cs: c!.buffer, dx: dx.buffer },
      params,
      workgroups: grid1d(N * M, 256, rt.caps.maxWorkgroupsPerDimension),
      work: { flops: 45 * N * M * knots, bytes: 8 * N * M },
    });
    return [dx];
  });
  cs.dispose();
  return out;
}
