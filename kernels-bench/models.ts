/**
 * Whole-model timings: SwinViT and the CoralBay encoder on one crop, forward (no tape) and
 * forward + backward of a scalar loss, with peak GPU memory (reef's pool) for each.
 */
import type { Runtime } from '../src/gpu/runtime.js';
import { fmtBytes } from '../src/gpu/errors.js';
import { paramShapes, describeConfig, type ModelConfig } from '../src/models/swin3d/config.js';
import { coralBayEncoderForward } from '../src/models/swin3d/coralbay-encoder.js';
import { initWeights } from '../src/models/swin3d/init.js';
import { weightLookup } from '../src/models/swin3d/state-dict.js';
import { swinViTForward } from '../src/models/swin3d/swin-vit.js';
import { backward, releaseGraph, zeroGrad } from '../src/tensor/backward.js';
import { randn } from '../src/tensor/create.js';
import { noGrad } from '../src/tensor/grad-mode.js';
import { mean } from '../src/ops/reduce.js';
import { add } from '../src/ops/binary.js';
import { tidy, type Tensor } from '../src/tensor/tensor.js';
import { median, timeCalls } from './timing.js';

export interface ModelRow {
  model: string;
  input: string;
  pass: 'forward' | 'forward+backward';
  medianMs: number;
  times: number[];
  /** Pool bytes above the weights and input (activations, gradients, temporaries). */
  peakBytes: number;
  /** Pool bytes held by the weights and the input. */
  weightBytes: number;
}

/** Runs the model once; returns every output tensor (caller disposes). */
function runModel(cfg: ModelConfig, x: Tensor, W: (n: string) => Tensor): Tensor[] {
  if (cfg.kind === 'coralbay-encoder') {
    const o = coralBayEncoderForward(x, W, cfg);
    // hs3 is both hidden[3] and maps[4]: one handle.
    return [...o.hidden, ...o.maps.filter((_, i) => i !== 4), o.embedding];
  }
  return swinViTForward(x, W, cfg);
}

export async function benchModel(rt: Runtime, cfg: ModelConfig, side: readonly [number, number, number], o: { backward?: boolean; reps?: number; warmup?: number; log?: (l: string) => void } = {}): Promise<ModelRow[]> {
  const log = o.log ?? console.log;
  const weights = initWeights(rt, paramShapes(cfg), 1, o.backward);
  const W = weightLookup(weights, 'random weights');
  const x = randn(rt, [1, cfg.inChannels, ...side], { seed: 2, requiresGrad: o.backward });
  const label = describeConfig(cfg);
  const input = `1×${cfg.inChannels}×${side.join('×')}`;
  const rows: ModelRow[] = [];
  try {
    await rt.sync();
    rt.pool.resetPeak();
    const base = rt.memory().inUse;
    log(`  weights and input ${fmtBytes(base)}`);
    const fwd = await timeCalls(
      async () => {
        const outs = noGrad(() => runModel(cfg, x, W));
        await rt.sync();
        for (const t of outs) t.dispose();
      },
      { warmup: o.warmup ?? 1, minReps: o.reps ?? 3, maxReps: o.reps ?? 3, budgetMs: 0 },
    );
    rows.push({ model: label, input, pass: 'forward', medianMs: median(fwd), times: fwd, peakBytes: rt.memory().peak - base, weightBytes: base });
    log(`  forward          ${median(fwd).toFixed(0).padStart(7)} ms  (runs ${fwd.map((t) => t.toFixed(0)).join(', ')})  peak ${fmtBytes(rt.memory().peak - base)}`);
    if (o.backward) {
      rt.pool.resetPeak();
      const fb = await timeCalls(
        async () => {
          const outs = runModel(cfg, x, W);
          // A scalar that depends on every output: the sum of their means.
          const loss = tidy(() => outs.map((t) => mean(t)).reduce((a, b) => add(a, b)));
          backward(loss);
          await rt.sync();
          releaseGraph(loss);
          for (const t of outs) t.dispose();
          loss.dispose();
          zeroGrad([...weights.values(), x]);
        },
        { warmup: o.warmup ?? 1, minReps: o.reps ?? 3, maxReps: o.reps ?? 3, budgetMs: 0 },
      );
      rows.push({ model: label, input, pass: 'forward+backward', medianMs: median(fb), times: fb, peakBytes: rt.memory().peak - base, weightBytes: base });
      log(`  forward+backward ${median(fb).toFixed(0).padStart(7)} ms  (runs ${fb.map((t) => t.toFixed(0)).join(', ')})  peak ${fmtBytes(rt.memory().peak - base)}`);
    }
  } finally {
    x.dispose();
    for (const w of weights.values()) w.dispose();
  }
  return rows;
}
