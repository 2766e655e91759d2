/**
 * A small end-to-end training run: an MLP classifies points drawn from Gaussian blobs, trained with
 * AdamW on the GPU. It is the current `reef demo` and the engine's training test; it exercises the
 * matmul (transposed weight, fused bias), GELU, LayerNorm, cross entropy, backward and the optimizer.
 */
import type { Runtime } from '../gpu/runtime.js';
import { Mlp } from '../nn/mlp.js';
import { crossEntropySoft } from '../ops/cross-entropy.js';
import { backward, zeroGrad } from '../tensor/backward.js';
import { makeRng, tensor } from '../tensor/create.js';
import { noGrad } from '../tensor/grad-mode.js';
import { AdamW } from './adamw.js';

export interface BlobDemoOptions {
  steps?: number;
  batch?: number;
  dim?: number;
  classes?: number;
  hidden?: number;
  lr?: number;
  seed?: number;
  onStep?: (step: number, loss: number) => void;
}

export interface BlobDemoResult {
  losses: number[];
  accuracy: number;
  parameters: number;
}

/** Points of `classes` Gaussian blobs in `dim` dimensions (unit spread, centres ~3 apart). */
export function makeBlobs(dim: number, classes: number, seed: number) {
  const rng = makeRng(seed);
  const centres = Array.from({ length: classes }, () => Array.from({ length: dim }, () => (rng() * 2 - 1) * 2));
  const randn = () => Math.sqrt(-2 * Math.log(Math.max(rng(), 1e-12))) * Math.cos(2 * Math.PI * rng());
  return (draw: number) => {
    const x = new Float32Array(draw * dim);
    const y = new Float32Array(draw * classes);
    const labels = new Int32Array(draw);
    for (let i = 0; i < draw; i++) {
      const c = Math.floor(rng() * classes);
      labels[i] = c;
      y[i * classes + c] = 1;
      for (let d = 0; d < dim; d++) x[i * dim + d] = centres[c]![d]! + 0.7 * randn();
    }
    return { x, y, labels };
  };
}

export async function trainBlobClassifier(rt: Runtime, opts: BlobDemoOptions = {}): Promise<BlobDemoResult> {
  const { steps = 200, batch = 128, dim = 16, classes = 4, hidden = 64, lr = 1e-2, seed = 7 } = opts;
  const draw = makeBlobs(dim, classes, seed);
  const model = new Mlp(rt, [dim, hidden, hidden, classes], seed);
  const params = model.parameters();
  const opt = new AdamW(params, { lr, weightDecay: 1e-4 });
  const losses: number[] = [];
  try {
    for (let step = 0; step < steps; step++) {
      const { x, y } = draw(batch);
      const xt = tensor(rt, x, [batch, dim]);
      const yt = tensor(rt, y, [batch, classes]);
      const logits = model.forward(xt);
      const loss = crossEntropySoft(logits, yt);
      backward(loss);
      opt.update();
      zeroGrad(params);
      const value = await loss.item();
      for (const t of [xt, yt, logits, loss]) t.dispose();
      losses.push(value);
      opts.onStep?.(step, value);
    }
    // Held-out accuracy.
    const { x, labels } = draw(512);
    const xt = tensor(rt, x, [512, dim]);
    const logits = noGrad(() => model.forward(xt));
    const values = await logits.read();
    xt.dispose();
    logits.dispose();
    let correct = 0;
    for (let i = 0; i < 512; i++) {
      let best = 0;
      for (let c = 1; c < classes; c++) if (values[i * classes + c]! > values[i * classes + best]!) best = c;
      if (best === labels[i]) correct++;
    }
    return { losses, accuracy: correct / 512, parameters: params.reduce((s, p) => s + p.size, 0) };
  } finally {
    opt.dispose();
    model.dispose();
  }
}
