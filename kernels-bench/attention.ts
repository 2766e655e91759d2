/**
 * Window attention: the fused kernel (src/ops/window-attention3d.ts) against the materialised
 * baseline (kernels-bench/materialised-attention.ts, "what PyTorch does") on the stage-1 window
 * attention of a CT crop: q, k, v of [1, side/2, side/2, side/2, featureSize] (patch size 2),
 * 3 heads (MONAI's stage-1 count), configured window 7³, unshifted and shifted by 3.
 *
 * Timing: wall time per call including the final GPU sync, median over `reps`, after one untimed
 * warm-up of each implementation. The two implementations alternate rep by rep (order swapped
 * every rep) so that drift in the machine's speed hits both alike. Peak memory: the rise of reef's
 * pool `inUse` over the call (resetPeak before, peak − inUse before), the largest over the reps;
 * inputs and the materialised version's geometry constants (shift mask, padded-position mask,
 * built once outside the timed region, sizes printed) are held before and so not counted.
 */
import type { Runtime } from '../src/gpu/runtime.js';
import { fmtBytes } from '../src/gpu/errors.js';
import { windowAndShift } from '../src/models/swin3d/window-geometry.js';
import { windowAttention3d, windowAttentionVariant } from '../src/ops/window-attention3d.js';
import { backward, zeroGrad } from '../src/tensor/backward.js';
import { randn } from '../src/tensor/create.js';
import { noGrad } from '../src/tensor/grad-mode.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { materialisedConstants, materialisedWindowAttention3d, type MaterialisedConstants, type SeparateQkvArgs } from './materialised-attention.js';
import { textTable } from './report.js';
import { median } from './timing.js';

export type AttentionImpl = 'fused' | 'materialised';
export type AttentionPass = 'forward' | 'forward+backward';

export interface AttentionRow {
  impl: AttentionImpl;
  pass: AttentionPass;
  /** q, k, v shape [1, D, H, W, C]. */
  shape: number[];
  heads: number;
  window: [number, number, number];
  shift: [number, number, number];
  medianMs: number;
  times: number[];
  /** Rise of the pool's bytes in use during the call (largest over the reps). */
  peakBytes: number;
  /** Materialised only: score chunks per batch item (1 = one [nW·heads, n, n] tensor). */
  chunks?: number;
}

export interface AttentionBenchOptions {
  /** Crop side in voxels (default 96); the stage-1 token grid is side/2 per axis. */
  side?: number;
  /** Channels C = 3 heads · head width (default 48). */
  featureSize?: number;
  /** Timed repeats per implementation (default 3). */
  reps?: number;
  log?: (l: string) => void;
  /** Also time forward + backward (default true). */
  backward?: boolean;
}

const HEADS = 3;

export async function runAttentionBench(rt: Runtime, opts: AttentionBenchOptions = {}): Promise<AttentionRow[]> {
  const log = opts.log ?? console.log;
  const side = opts.side ?? 96;
  const fs = opts.featureSize ?? 48;
  const reps = Math.max(1, opts.reps ?? 3);
  const withBackward = opts.backward ?? true;
  if (side % 2 !== 0 || side < 2) throw new Error(`attention bench: side ${side} must be even (patch size 2)`);
  if (fs % HEADS !== 0) throw new Error(`attention bench: featureSize ${fs} must split into ${HEADS} heads`);
  const g = side / 2;
  const shape = [1, g, g, g, fs];
  const grad = withBackward;
  const q = randn(rt, shape, { seed: 1, requiresGrad: grad });
  const k = randn(rt, shape, { seed: 2, requiresGrad: grad });
  const v = randn(rt, shape, { seed: 3, requiresGrad: grad });
  const qkvBias = randn(rt, [3 * fs], { seed: 4, std: 0.1, requiresGrad: grad });
  const table = randn(rt, [13 * 13 * 13, HEADS], { seed: 5, std: 0.02, requiresGrad: grad });
  const dOut = randn(rt, shape, { seed: 6 });
  const inputs = [q, k, v, qkvBias, table, dOut];
  const rows: AttentionRow[] = [];
  const limit = Math.min(rt.caps.maxStorageBufferBindingSize, rt.caps.maxBufferSize);
  log(`window attention, stage 1 of a ${side}³ crop: q, k, v [${shape.join(', ')}], ${HEADS} heads of ${fs / HEADS}, configured window 7³; ${rt.describe()}`);
  log(`  wall time per call incl. GPU sync, median of ${reps} after a warm-up, fused and materialised alternating; peak = rise of reef's pool over the call`);
  log(`  materialised: table[index] gathered on the GPU each call but off the tape (no table gradient; the fused backward computes one)`);
  log(`  fused kernels (forward and backward): ${windowAttentionVariant(rt, fs / HEADS, fs)} (REEF_ATTENTION=tiled|rows overrides)`);
  try {
    for (const s of [0, 3]) {
      const ws = windowAndShift([g, g, g], [7, 7, 7], [s, s, s]);
      const args: SeparateQkvArgs = { q, k, v, qkvBias, table, heads: HEADS, window: ws.window, shift: ws.shift, configuredWindow: [7, 7, 7] };
      const consts = materialisedConstants(args);
      try {
        const n = ws.window[0] * ws.window[1] * ws.window[2];
        const nW = Math.ceil(g / ws.window[0]) * Math.ceil(g / ws.window[1]) * Math.ceil(g / ws.window[2]);
        log(`\nwindow [${ws.window}] shift [${ws.shift}]: ${nW} windows of ${n} tokens; materialised scores [${nW * HEADS}, ${n}, ${n}] = ${fmtBytes(consts.scoreBytes)} per tensor`);
        if (consts.chunks > 1) {
          log(`  scores exceed the adapter's storage binding limit (${fmtBytes(limit)}): materialised runs in ${consts.chunks} chunks of ≤ ${consts.windowsPerChunk} windows`);
        }
        log(`  materialised constants held outside the timed region: ${fmtBytes(consts.bytes)}${consts.masks ? ' (shift mask)' : ''}${consts.padMask ? ' incl. padded-position mask' : ''}`);
        const impls: Record<AttentionImpl, () => Tensor> = {
          fused: () => windowAttention3d(args),
          materialised: () => materialisedWindowAttention3d({ ...args, constants: consts }),
        };
        const passes: AttentionPass[] = withBackward ? ['forward', 'forward+backward'] : ['forward'];
        for (const pass of passes) {
          const call = async (impl: AttentionImpl) => {
            if (pass === 'forward') {
              const out = noGrad(impls[impl]);
              await rt.sync();
              out.dispose();
            } else {
              const out = impls[impl]();
              backward(out, dOut);
              await rt.sync();
              out.dispose();
              zeroGrad([q, k, v, qkvBias, table]);
            }
          };
          const measure = async (impl: AttentionImpl) => {
            await rt.sync();
            rt.pool.resetPeak();
            const base = rt.memory().inUse;
            const t0 = performance.now();
            await call(impl);
            return { ms: performance.now() - t0, peak: rt.memory().peak - base };
          };
          const order: AttentionImpl[] = ['fused', 'materialised'];
          for (const impl of order) await call(impl); // warm-up: pipelines, pool buffers
          const res: Record<AttentionImpl, { times: number[]; peak: number }> = { fused: { times: [], peak: 0 }, materialised: { times: [], peak: 0 } };
          for (let r = 0; r < reps; r++) {
            for (const impl of r % 2 ? [...order].reverse() : order) {
              const m = await measure(impl);
              res[impl].times.push(m.ms);
              res[impl].peak = Math.max(res[impl].peak, m.peak);
            }
          }
          for (const impl of order) {
            rows.push({
              impl, pass, shape, heads: HEADS, window: ws.window, shift: ws.shift,
              medianMs: median(res[impl].times), times: res[impl].times, peakBytes: res[impl].peak,
              ...(impl === 'materialised' ? { chunks: consts.chunks } : {}),
            });
          }
          const f = rows[rows.length - 2]!;
          const m = rows[rows.length - 1]!;
          log(`  ${pass.padEnd(16)} fused ${f.medianMs.toFixed(0).padStart(6)} ms (${f.times.map((t) => t.toFixed(0)).join(', ')}) peak ${fmtBytes(f.peakBytes)}` +
            ` | materialised ${m.medianMs.toFixed(0).padStart(6)} ms (${m.times.map((t) => t.toFixed(0)).join(', ')}) peak ${fmtBytes(m.peakBytes)}`);
        }
      } finally {
        consts.dispose();
      }
    }
  } finally {
    for (const t of inputs) t.dispose();
    zeroGrad([q, k, v, qkvBias, table]);
  }
  log('');
  log(attentionTable(rows));
  return rows;
}

/** One line per (shift, pass): both implementations and the ratios materialised / fused. */
export function attentionTable(rows: readonly AttentionRow[]): string {
  const head = ['shift', 'pass', 'fused ms', 'mat. ms', 'time ×', 'fused peak', 'mat. peak', 'memory ×', 'mat. chunks'];
  const cells: string[][] = [];
  for (const f of rows.filter((r) => r.impl === 'fused')) {
    const m = rows.find((r) => r.impl === 'materialised' && r.pass === f.pass && r.shift.join() === f.shift.join());
    if (!m) continue;
    cells.push([
      `[${f.shift}]`,
      f.pass,
      f.medianMs.toFixed(0),
      m.medianMs.toFixed(0),
      (m.medianMs / f.medianMs).toFixed(2),
      fmtBytes(f.peakBytes),
      fmtBytes(m.peakBytes),
      f.peakBytes > 0 ? (m.peakBytes / f.peakBytes).toFixed(1) : '-',
      String(m.chunks ?? 1),
    ]);
  }
  return textTable(head, cells);
}
