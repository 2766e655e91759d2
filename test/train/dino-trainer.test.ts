/**
 * The self-distillation step end to end on a tiny CoralBay encoder and the synthetic phantom:
 * losses finite and teacher distributions proper; a run stopped after step k and restored from the
 * saved tensors and counters gives bitwise the losses of a run that never stopped; the teacher starts
 * as the student and follows it by EMA. With f16 activations: close to the f32 step, the loss scale
 * saved and restored, and an overflowing scale skips the step (weights untouched) and backs off.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime';
import { makePhantom } from '../../src/data/phantom';
import { prepareVolume } from '../../src/data/volume-cache';
import type { CropSource } from '../../src/data/crops';
import { preset } from '../../src/models/swin3d/config';
import { DinoTrainer, type DinoTrainerOptions, type DinoStepResult } from '../../src/train/dino-trainer';
import { makeBatch, type BatchSpec } from '../../src/train/pretrain-batch';
import { testRuntime } from '../support/runtime';

let rt: Runtime;
let sources: CropSource[];
beforeAll(async () => {
  rt = await testRuntime();
  sources = [1, 2].map((seed) => prepareVolume(makePhantom({ shape: [48, 48, 40], spacing: [1.5, 1.5, 1.5], seed })));
});

const OPTS: DinoTrainerOptions = {
  model: { ...preset('coralbay-tiny'), featureSize: 12 },
  batch: 2,
  globals: 2,
  locals: 2,
  globalSide: 32,
  localSide: 16,
  prototypes: 64,
  headHidden: 32,
  bottleneck: 16,
  studentTemp: 0.1,
  centerMomentum: 0.9,
  centering: 'centre',
  ibotWeight: 1,
  koleoWeight: 0.1,
  clip: 3,
  clipMode: 'global',
  schedules: { epochs: 2, epochSteps: 2, batchSize: 2, baseLr: 0.1, warmupEpochs: 1, warmupTeacherTempEpochs: 1 },
  seed: 7,
  // Pinned: 'auto' would pick f16 on a GPU with shader-f16 and change the bounds below.
  precision: 'f32',
};
const SPEC: BatchSpec = { batch: 2, seed: 11, crops: { nGlobal: 2, nLocal: 2, globalSide: 32, localSide: 16 } };
const terms = (r: DinoStepResult) => [r.loss, r.dino, r.ibot, r.koleo, r.gradNorm];

describe('DINO + iBOT + KoLeo step on a tiny CoralBay encoder', () => {
  let straight: DinoStepResult[] = [];

  it('runs steps with finite losses; the teacher distributions are proper', async () => {
    const before = rt.memory().inUse;
    const trainer = new DinoTrainer(rt, OPTS);
    straight = [];
    let held = 0;
    for (let step = 0; step < 3; step++) {
      straight.push(await trainer.step(step, makeBatch(sources, step, SPEC)));
      // The clipper and optimizer allocate their buffers in the first step; nothing grows after it.
      await rt.sync();
      if (step === 0) held = rt.memory().inUse;
    }
    console.log(straight.map((r) => `step ${r.step}: loss ${r.loss.toFixed(5)} dino ${r.dino.toFixed(5)} ibot ${r.ibot.toFixed(5)} koleo ${r.koleo.toFixed(5)} |g| ${r.gradNorm.toFixed(4)} H ${r.teacherEntropy.toFixed(3)} masked ${r.maskedTokens}`).join('\n'));
    for (const r of straight) {
      expect(r.applied).toBe(true);
      for (const v of terms(r)) expect(Number.isFinite(v)).toBe(true);
      expect(r.teacherEntropy).toBeGreaterThan(0);
      expect(r.teacherEntropy).toBeLessThanOrEqual(Math.log(64) + 1e-4);
      expect(r.loss).toBeCloseTo(r.dino + r.ibot + 0.1 * r.koleo, 5);
    }
    expect(straight.some((r) => r.maskedTokens > 0)).toBe(true);
    expect(rt.memory().inUse).toBe(held);
    trainer.dispose();
    await rt.sync();
    expect(rt.memory().inUse, JSON.stringify([...rt.pool.liveByOwner()])).toBe(before);
  });

  it('stopped after step 1 and restored from its saved state, it gives bitwise the same losses', async () => {
    const first = new DinoTrainer(rt, OPTS);
    for (let step = 0; step < 2; step++) await first.step(step, makeBatch(sources, step, SPEC));
    const saved = new Map<string, Float32Array>();
    for (const [name, t] of first.stateTensors()) saved.set(name, await t.read());
    const meta = JSON.parse(JSON.stringify(first.stateMeta())) as ReturnType<DinoTrainer['stateMeta']>;
    first.dispose();

    const resumed = new DinoTrainer(rt, { ...OPTS, seed: 99 }); // different init: everything must come from the state
    resumed.loadState(meta, (n) => saved.get(n));
    const r = await resumed.step(2, makeBatch(sources, 2, SPEC));
    resumed.dispose();
    expect(terms(r)).toEqual(terms(straight[2]!));
  });

  it('two micro-batches of one image (gradient accumulation) make the step of one batch of two', async () => {
    // KoLeo off: its neighbours are the only thing that stays within a micro-batch (with centring).
    const whole = makeBatch(sources, 0, SPEC);
    const g = 32 ** 3;
    const l = 16 ** 3;
    // View-major rows v·B + b: micro-batch b takes rows b and 2 + b of each kind.
    const micro = [0, 1].map((b) => ({
      globals: Float32Array.from([...whole.globals.subarray(b * g, (b + 1) * g), ...whole.globals.subarray((2 + b) * g, (3 + b) * g)]),
      locals: Float32Array.from([...whole.locals.subarray(b * l, (b + 1) * l), ...whole.locals.subarray((2 + b) * l, (3 + b) * l)]),
      masks: [whole.masks[b]!, whole.masks[2 + b]!],
    }));
    const one = new DinoTrainer(rt, { ...OPTS, koleoWeight: 0 });
    const acc = new DinoTrainer(rt, { ...OPTS, koleoWeight: 0, batch: 1, accumulate: 2 });
    await expect(acc.step(0, micro[0]!)).rejects.toThrow(/1 micro-batches given, the trainer accumulates 2/);
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-6);
    // The same crops twice: the second step sees the updated weights, the EMA teacher and the centres.
    for (let step = 0; step < 2; step++) {
      const a = await one.step(step, whole);
      const b = await acc.step(step, micro);
      for (const [x, y] of [[b.loss, a.loss], [b.dino, a.dino], [b.ibot, a.ibot], [b.gradNorm, a.gradNorm], [b.teacherEntropy, a.teacherEntropy]] as const) {
        expect(rel(x, y), `step ${step}: ${x} vs ${y}`).toBeLessThan(2e-5);
      }
      expect(b.maskedTokens).toBe(a.maskedTokens);
    }
    const pa = new Map(one.parameters);
    for (const [name, t] of acc.parameters) {
      const [x, y] = [await t.read(), await pa.get(name)!.read()];
      let err = 0;
      let scale = 0;
      x.forEach((v, i) => {
        err = Math.max(err, Math.abs(v - y[i]!));
        scale = Math.max(scale, Math.abs(y[i]!));
      });
      expect(err, name).toBeLessThanOrEqual(1e-5 * Math.max(scale, 1));
    }
    one.dispose();
    acc.dispose();
  });

  it('adds SIGReg on the global embeddings when asked, with slices keyed by (seed, step)', async () => {
    const opts = { ...OPTS, sigregWeight: 0.5, sigregSlices: 64 };
    const a = new DinoTrainer(rt, opts);
    const ra = await a.step(0, makeBatch(sources, 0, SPEC));
    a.dispose();
    expect(ra.sigreg).toBeGreaterThan(0);
    expect(ra.loss).toBeCloseTo(ra.dino + ra.ibot + 0.1 * ra.koleo + 0.5 * ra.sigreg, 5);
    // Off, the other terms are those of the plain step 0; on again, bitwise the same step.
    expect([ra.dino, ra.ibot, ra.koleo]).toEqual([straight[0]!.dino, straight[0]!.ibot, straight[0]!.koleo]);
    const b = new DinoTrainer(rt, opts);
    const rb = await b.step(0, makeBatch(sources, 0, SPEC));
    b.dispose();
    expect(terms(rb).concat(rb.sigreg)).toEqual(terms(ra).concat(ra.sigreg));
  });

  describe('f16 activations (f32 master weights, dynamic loss scale)', () => {
    const needF16 = () => {
      if (rt.caps.f16) return true;
      console.log('f16 trainer tests skipped: this adapter has no shader-f16');
      return false;
    };

    it('tracks the f32 step within f16 rounding, and resumes bitwise with its loss scale', async () => {
      if (!needF16()) return;
      const half = new DinoTrainer(rt, { ...OPTS, precision: 'f16', lossScaler: { initScale: 2 ** 12, growthInterval: 2 } });
      expect(half.activations).toBe('f16');
      const steps: DinoStepResult[] = [];
      for (let step = 0; step < 2; step++) steps.push(await half.step(step, makeBatch(sources, step, SPEC)));
      // growthInterval 2: two finite steps double the scale.
      expect(steps.map((r) => r.lossScale)).toEqual([2 ** 12, 2 ** 12]);
      expect(half.lossScaler!.scale).toBe(2 ** 13);
      const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-3);
      for (const [k, r] of steps.entries()) {
        expect(r.applied).toBe(true);
        const want = straight[k]!;
        const errs = [rel(r.loss, want.loss), rel(r.dino, want.dino), rel(r.ibot, want.ibot), rel(r.gradNorm, want.gradNorm)];
        console.log(`f16 step ${k}: loss ${r.loss.toFixed(5)} (f32 ${want.loss.toFixed(5)}), relative differences loss/dino/ibot/|g| ${errs.map((e) => e.toExponential(1)).join(' / ')}`);
        for (const e of errs) expect(e).toBeLessThan(2e-2);
      }
      const saved = new Map<string, Float32Array>();
      for (const [name, t] of half.stateTensors()) saved.set(name, await t.read());
      const meta = JSON.parse(JSON.stringify(half.stateMeta())) as ReturnType<DinoTrainer['stateMeta']>;
      expect(meta.lossScaler?.scale).toBe(2 ** 13);
      const next = await half.step(2, makeBatch(sources, 2, SPEC));
      half.dispose();
      const resumed = new DinoTrainer(rt, { ...OPTS, precision: 'f16', seed: 99, lossScaler: { initScale: 1, growthInterval: 2 } });
      // An f32 run's state has no scale to take up.
      expect(() => resumed.loadState({ ...meta, lossScaler: undefined }, (n) => saved.get(n))).toThrow(/no loss-scaler state/);
      resumed.loadState(meta, (n) => saved.get(n));
      const again = await resumed.step(2, makeBatch(sources, 2, SPEC));
      resumed.dispose();
      expect(again.lossScale).toBe(2 ** 13);
      expect(terms(again)).toEqual(terms(next));
    });

    it('skips a step whose f16 gradients overflow, leaves the weights as they were, and backs the scale off', async () => {
      if (!needF16()) return;
      const t = new DinoTrainer(rt, { ...OPTS, precision: 'f16', lossScaler: { initScale: 2 ** 40, backoffFactor: 2 ** -30 } });
      const before = await Promise.all(t.parameters.map(([, p]) => p.read()));
      const teacherBefore = await Promise.all([...t.teacher.encoder.values()].map((p) => p.read()));
      const r0 = await t.step(0, makeBatch(sources, 0, SPEC));
      expect(r0.applied).toBe(false);
      expect(r0.lossScale).toBe(2 ** 40);
      expect(r0.nonFinite!.length).toBeGreaterThan(0);
      expect(t.lossScaler!.scale).toBe(2 ** 10);
      expect(t.lossScaler!.skippedSteps).toBe(1);
      const after = await Promise.all(t.parameters.map(([, p]) => p.read()));
      after.forEach((v, i) => expect(Buffer.from(v.buffer).equals(Buffer.from(before[i]!.buffer)), t.parameters[i]![0]).toBe(true));
      const teacherAfter = await Promise.all([...t.teacher.encoder.values()].map((p) => p.read()));
      teacherAfter.forEach((v, i) => expect(Buffer.from(v.buffer).equals(Buffer.from(teacherBefore[i]!.buffer))).toBe(true));
      const r1 = await t.step(1, makeBatch(sources, 1, SPEC));
      expect(r1.applied).toBe(true);
      expect(r1.lossScale).toBe(2 ** 10);
      for (const v of terms(r1)) expect(Number.isFinite(v)).toBe(true);
      t.dispose();
    });
  });
});
