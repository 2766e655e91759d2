import { beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../src/gpu/runtime';
import { trainBlobClassifier } from '../src/train/blobs-demo';
import { testRuntime } from './support/runtime';

let rt: Runtime;
beforeAll(async () => {
  rt = await testRuntime();
});

describe('training', () => {
  it('an MLP trained for 200 steps with AdamW lowers its loss more than 10×', async () => {
    const before = rt.memory().inUse;
    const { losses, accuracy } = await trainBlobClassifier(rt, { steps: 200, seed: 11 });
    const first = losses.slice(0, 5).reduce((s, x) => s + x, 0) / 5;
    const last = losses.slice(-5).reduce((s, x) => s + x, 0) / 5;
    console.log(`MLP loss ${first.toFixed(4)} → ${last.toFixed(5)} (${(first / last).toFixed(1)}×), held-out accuracy ${accuracy}`);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(first / last).toBeGreaterThan(10);
    expect(accuracy).toBeGreaterThan(0.95);
    expect(rt.memory().inUse).toBe(before);
  });
});
