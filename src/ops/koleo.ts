/**
 * KoLeo's nearest-neighbour log-distance on rows that are already L2-normalised, within groups of
 * `group` consecutive rows (a batch per global crop):
 *   loss = Σ_groups −mean_i log(‖x̂_i − x̂_nn(i)‖₂ + eps),  nn(i) = argmax_{j ≠ i} x̂_i·x̂_j.
 * The neighbour is a constant of the backward; the gradient reaches both x̂_i and x̂_nn(i).
 */
import code from '../../shaders/koleo.wgsl';
import type { ShaderFile } from '../gpu/kernel.js';
import { ReefError } from '../gpu/errors.js';
import { empty } from '../tensor/create.js';
import { noGrad } from '../tensor/grad-mode.js';
import { record } from '../tensor/tape.js';
import type { Tensor } from '../tensor/tensor.js';
import { grid1d } from './geometry.js';
import { sum } from './reduce.js';

export const KOLEO: ShaderFile = { name: 'koleo', code };

export function koleoNormalized(xhat: Tensor, group?: number, eps = 1e-8): Tensor {
  if (xhat.ndim !== 2 || xhat.dtype !== 'f32') throw new ReefError(`koleo: ${xhat.describe()} must be f32 [rows, dim]`);
  const [rows, D] = xhat.shape as [number, number];
  const G = group ?? rows;
  if (!(Number.isInteger(G) && G > 0 && rows % G === 0)) throw new ReefError(`koleo: group ${G} must divide the ${rows} rows`);
  if (G < 2) throw new ReefError(`koleo: needs at least 2 rows per group (a nearest neighbour other than itself), got ${G}`);
  if (D === 0) throw new ReefError(`koleo: ${xhat.describe()} has no features`);
  const rt = xhat.rt;
  const params = { rows, D, group: G, n: rows * D, eps, scale: 1 / G };
  const rowLoss = empty(rt, [rows], 'f32', 'koleo_row_loss');
  const stats = empty(rt, [rows, 2], 'f32', 'koleo_stats');
  rt.dispatch({
    kernel: { shader: KOLEO, entry: 'forward' },
    buffers: { x: xhat.buffer, rowLoss: rowLoss.buffer, stats: stats.buffer },
    params,
    workgroups: grid1d(rows, 64, rt.caps.maxWorkgroupsPerDimension),
    work: { flops: 2 * rows * G * D, bytes: 4 * rows * G * D },
  });
  const loss = noGrad(() => sum(rowLoss));
  rowLoss.dispose();
  const out = record('koleo', loss, [xhat], [xhat, stats], (g, [xs, st]) => {
    const dx = empty(rt, xhat.shape, 'f32', 'koleo_dx');
    rt.dispatch({
      kernel: { shader: KOLEO, entry: 'backward' },
      buffers: { x: xs!.buffer, gradOut: g.buffer, stats: st!.buffer, dx: dx.buffer },
      params,
      workgroups: grid1d(rows * D, 256, rt.caps.maxWorkgroupsPerDimension),
      work: { flops: 4 * rows * G, bytes: 4 * rows * D * 3 },
    });
    return [dx];
  });
  stats.dispose();
  return out;
}
