/** DINO schedules as pure functions of the step, against their closed forms at chosen steps. */
import { describe, expect, it } from 'vitest';
import { cosineDecay, DinoSchedules, linearRamp, scaledLr, warmupCosine } from '../../src/train/schedules';

// 100 epochs of 50 steps, global batch 512: peak LR 5e-4·512/256 = 1e-3, warm-up 500 steps,
// teacher-temperature warm-up 1500 steps, last layer frozen for the first 50 steps.
const s = new DinoSchedules({ epochs: 100, epochSteps: 50, batchSize: 512 });
const T = 5000;
const close = (a: number, b: number) => expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-15 * Math.max(1, Math.abs(b)));

describe('LR: linear warm-up from 0, then cosine to min_lr', () => {
  it('peak LR follows the linear scaling rule', () => {
    expect(s.peakLr).toBe(1e-3);
    expect(scaledLr(5e-4, 1024)).toBe(2e-3);
    expect(s.totalSteps).toBe(T);
    expect(s.warmupSteps).toBe(500);
  });
  it('warm-up start, middle, last step and end', () => {
    expect(s.lr(0)).toBe(0);
    close(s.lr(1), 1e-3 / 500);
    close(s.lr(250), 5e-4);
    close(s.lr(499), (1e-3 * 499) / 500);
    close(s.lr(500), 1e-3);
  });
  it('cosine: after the peak, midpoint, end, and clamped after the run', () => {
    close(s.lr(501), 1e-6 + 0.5 * (1e-3 - 1e-6) * (1 + Math.cos(Math.PI / 4500)));
    close(s.lr(2750), (1e-3 + 1e-6) / 2);
    close(s.lr(T - 1), 1e-6 + 0.5 * (1e-3 - 1e-6) * (1 + Math.cos((Math.PI * 4499) / 4500)));
    expect(s.lr(T)).toBe(1e-6);
    expect(s.lr(T + 123)).toBe(1e-6);
  });
  it('is monotone: up through warm-up, down after', () => {
    for (let i = 1; i <= 500; i++) expect(s.lr(i)).toBeGreaterThan(s.lr(i - 1));
    for (let i = 501; i <= T; i++) expect(s.lr(i)).toBeLessThan(s.lr(i - 1));
  });
});

describe('weight decay, teacher momentum, teacher temperature, last layer', () => {
  it('weight decay: cosine 0.04 → 0.4 over the run', () => {
    expect(s.weightDecay(0)).toBe(0.04);
    close(s.weightDecay(T / 2), 0.22);
    close(s.weightDecay(T / 4), 0.4 + 0.5 * (0.04 - 0.4) * (1 + Math.SQRT1_2));
    expect(s.weightDecay(T)).toBe(0.4);
  });
  it('teacher momentum m_i = 1 + ½(0.996 − 1)(1 + cos(π i / I))', () => {
    for (const i of [0, 1, 49, 50, 777, 2500, 4999, 5000]) close(s.teacherMomentum(i), 1 + 0.5 * (0.996 - 1) * (1 + Math.cos((Math.PI * i) / T)));
    expect(s.teacherMomentum(0)).toBe(0.996);
    close(s.teacherMomentum(T / 2), 0.998);
    expect(s.teacherMomentum(T)).toBe(1);
  });
  it('teacher temperature: per step, linear 0.04 → 0.07 over 30 epochs, then constant', () => {
    expect(s.teacherTemp(0)).toBe(0.04);
    close(s.teacherTemp(1), 0.04 + 0.03 / 1500);
    close(s.teacherTemp(750), 0.055);
    close(s.teacherTemp(1499), 0.04 + (0.03 * 1499) / 1500);
    expect(s.teacherTemp(1500)).toBe(0.07);
    expect(s.teacherTemp(4000)).toBe(0.07);
  });
  it('epoch boundaries: the last layer is frozen for exactly the first epoch', () => {
    expect(s.at(49)).toMatchObject({ epoch: 0, lastLayerLrScale: 0 });
    expect(s.at(50)).toMatchObject({ epoch: 1, lastLayerLrScale: 1 });
    expect(s.at(0).lastLayerLrScale).toBe(0);
    const v = s.at(100);
    expect(v).toEqual({ step: 100, epoch: 2, lr: s.lr(100), weightDecay: s.weightDecay(100), teacherMomentum: s.teacherMomentum(100), teacherTemp: s.teacherTemp(100), lastLayerLrScale: 1 });
  });
  it('every value is a parameter', () => {
    const c = new DinoSchedules({
      epochs: 4, epochSteps: 10, batchSize: 64, baseLr: 1e-3, lrRefBatch: 128, minLr: 0, warmupEpochs: 1,
      weightDecay: 0.1, weightDecayEnd: 0.1, momentumTeacher: 0.99, momentumTeacherEnd: 0.999,
      warmupTeacherTemp: 0.02, teacherTemp: 0.05, warmupTeacherTempEpochs: 2, freezeLastLayerEpochs: 0,
    });
    expect(c.peakLr).toBe(5e-4);
    close(c.lr(5), 2.5e-4);
    expect(c.lr(40)).toBe(0);
    expect(c.weightDecay(17)).toBe(0.1);
    expect(c.teacherMomentum(40)).toBe(0.999);
    close(c.teacherTemp(10), 0.035);
    expect(c.lastLayerLrScale(0)).toBe(1);
  });
  it('is pure: the same step gives the same values in any order', () => {
    const a = [3000, 10, 4999, 10].map((i) => s.at(i));
    expect(a[1]).toEqual(a[3]);
    expect(new DinoSchedules({ epochs: 100, epochSteps: 50, batchSize: 512 }).at(3000)).toEqual(a[0]);
  });
});

describe('building blocks and validation', () => {
  it('closed forms', () => {
    expect(cosineDecay(0, 2, 1, 10)).toBe(2);
    close(cosineDecay(5, 2, 1, 10), 1.5);
    expect(cosineDecay(10, 2, 1, 10)).toBe(1);
    expect(linearRamp(3, 1, 2, 4)).toBe(1.75);
    expect(linearRamp(9, 1, 2, 0)).toBe(2);
    expect(warmupCosine(0, { peak: 1, final: 0, warmupSteps: 0, totalSteps: 10 })).toBe(1);
    expect(warmupCosine(2, { peak: 1, final: 0, warmupSteps: 4, totalSteps: 10, start: 0.5 })).toBe(0.75);
  });
  it('rejects bad steps and a warm-up longer than the run', () => {
    expect(() => s.lr(-1)).toThrow(/non-negative integer/);
    expect(() => s.at(1.5)).toThrow(/non-negative integer/);
    expect(() => new DinoSchedules({ epochs: 5, epochSteps: 10, batchSize: 256 })).toThrow(/warm-up/);
    expect(() => new DinoSchedules({ epochs: 5, epochSteps: 0, batchSize: 256 })).toThrow(/epochSteps/);
  });
});
