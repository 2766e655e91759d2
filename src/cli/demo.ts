/** `reef demo`: trains the blob classifier with a progress bar and reports loss, speed and memory. */
import { SingleBar } from 'cli-progress';
import { fmtBytes } from '../gpu/errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { trainBlobClassifier } from '../train/blobs-demo.js';

export async function runDemo(rt: Runtime, opts: { steps: number }): Promise<number> {
  console.log(`reef demo on ${rt.describe()}`);
  console.log('training an MLP (16 → 64 → 64 → 4, GELU + LayerNorm) on 4 Gaussian blobs with AdamW, batch 128');
  const bar = new SingleBar({
    format: 'step {value}/{total} [{bar}] loss {loss} | {rate} steps/s | GPU mem {mem} | ETA {eta}s',
    hideCursor: true,
    noTTYOutput: true,
    notTTYSchedule: 2000,
  });
  const t0 = performance.now();
  bar.start(opts.steps, 0, { loss: '-', rate: '-', mem: '-' });
  const result = await trainBlobClassifier(rt, {
    steps: opts.steps,
    onStep: (step, loss) => {
      const rate = (step + 1) / ((performance.now() - t0) / 1000);
      bar.update(step + 1, { loss: loss.toFixed(4), rate: rate.toFixed(1), mem: fmtBytes(rt.memory().inUse) });
    },
  });
  bar.stop();
  const { losses, accuracy, parameters } = result;
  const first = losses[0] ?? NaN;
  const last = losses[losses.length - 1] ?? NaN;
  const mem = rt.memory();
  console.log(`${parameters} parameters; loss ${first.toFixed(4)} → ${last.toFixed(5)} in ${losses.length} steps (${(first / last).toFixed(1)}× lower)`);
  console.log(`held-out accuracy ${(accuracy * 100).toFixed(1)}%; ${((performance.now() - t0) / 1000).toFixed(1)} s; GPU memory peak ${fmtBytes(mem.peak)}, ${mem.buffersCreated} buffers created, ${mem.reuses} reused from the pool`);
  return Number.isFinite(last) && last < first ? 0 : 1;
}
