/** The dynamic loss scaler's state machine and its JSON state. */
import { describe, expect, it } from 'vitest';
import { DynamicLossScaler } from '../../src/train/loss-scaler';

describe('DynamicLossScaler', () => {
  it('starts at 2^16, halves and skips on a non-finite step, doubles after 2000 finite steps', () => {
    const s = new DynamicLossScaler();
    expect(s.scale).toBe(65536);
    expect(s.invScale).toBe(2 ** -16);
    expect(s.update(false)).toBe(true);
    expect(s.scale).toBe(32768);
    for (let i = 0; i < 1999; i++) expect(s.update(true)).toBe(false);
    expect(s.scale).toBe(32768);
    expect(s.update(true)).toBe(false);
    expect(s.scale).toBe(65536);
    expect(s.state()).toEqual({ scale: 65536, goodSteps: 0, skippedSteps: 1 });
  });

  it('a non-finite step resets the count of finite steps', () => {
    const s = new DynamicLossScaler({ initScale: 8, growthInterval: 3 });
    s.update(true);
    s.update(true);
    s.update(false);
    expect(s.state()).toEqual({ scale: 4, goodSteps: 0, skippedSteps: 1 });
    s.update(true);
    s.update(true);
    expect(s.scale).toBe(4);
    s.update(true);
    expect(s.scale).toBe(8);
  });

  it('stays within [minScale, maxScale]', () => {
    const s = new DynamicLossScaler({ initScale: 4, minScale: 1, maxScale: 8, growthInterval: 1 });
    for (let i = 0; i < 5; i++) s.update(false);
    expect(s.scale).toBe(1);
    expect(s.skippedSteps).toBe(5);
    for (let i = 0; i < 5; i++) s.update(true);
    expect(s.scale).toBe(8);
  });

  it('state survives JSON and the restored scaler continues identically', () => {
    const a = new DynamicLossScaler({ growthInterval: 5 });
    const pattern = [true, true, false, true, true, true, true, true, true, false, true, true];
    for (const f of pattern.slice(0, 7)) a.update(f);
    const b = new DynamicLossScaler({ growthInterval: 5 });
    b.loadState(JSON.parse(JSON.stringify(a.state())));
    for (const f of pattern.slice(7)) expect(b.update(f)).toBe(a.update(f));
    expect(b.state()).toEqual(a.state());
  });

  it('rejects bad options and states', () => {
    expect(() => new DynamicLossScaler({ growthInterval: 0 })).toThrow(/growthInterval/);
    expect(() => new DynamicLossScaler({ backoffFactor: 1 })).toThrow(/backoffFactor/);
    expect(() => new DynamicLossScaler().loadState({ scale: 0, goodSteps: 0, skippedSteps: 0 })).toThrow(/scale/);
    expect(() => new DynamicLossScaler().loadState({ scale: 2, goodSteps: -1, skippedSteps: 0 })).toThrow(/goodSteps/);
  });
});
