/**
 * Recipe → run: the augmentation probabilities reach the crop sampler from their flags and are
 * checked as probabilities; the precision and the teacher momentum's end reach the trainer.
 */
import { describe, expect, it } from 'vitest';
import { recipe, recipeRun } from '../../src/train/pretrain-recipe';
import { parsePretrainArgs } from '../../src/cli/pretrain-args';
import { DEFAULT_AUGMENT } from '../../src/data/augment';
import { DinoSchedules } from '../../src/train/schedules';

describe('pretrain recipe', () => {
  it('passes the augmentation probabilities to the crops, defaulting to the augment module', () => {
    // coralbay-b keeps the augment module's defaults; tiny turns flips off (its one head CT).
    expect(recipeRun(recipe('tiny'), 10, 0).spec.crops.augment?.flipProb).toBe(0);
    const { spec } = recipeRun(recipe('coralbay-b'), 10, 0);
    expect(spec.crops.augment).toEqual({ flipProb: DEFAULT_AUGMENT.flipProb, smoothProb: DEFAULT_AUGMENT.smoothProb, histogramShiftProb: DEFAULT_AUGMENT.histogramShiftProb });
    const opts = parsePretrainArgs(['--data', 'sample', '--steps', '5', '--out', 'x', '--flip-prob', '0', '--smooth-prob', '0.25', '--histogram-shift-prob', '1']);
    const r = { ...recipe('tiny'), ...opts.overrides };
    expect(recipeRun(r, 5, 0).spec.crops.augment).toEqual({ flipProb: 0, smoothProb: 0.25, histogramShiftProb: 1 });
  });

  it('rejects a probability outside [0, 1] by its flag name', () => {
    expect(() => recipeRun({ ...recipe('tiny'), flipProb: 1.5 }, 10, 0)).toThrow(/--flip-prob 1.5: expected a probability/);
    expect(() => recipeRun({ ...recipe('tiny'), histogramShiftProb: -0.1 }, 10, 0)).toThrow(/--histogram-shift-prob -0.1/);
  });

  it('passes --precision and --momentum-teacher-end to the trainer; a bad precision is refused', () => {
    const opts = parsePretrainArgs(['--data', 'sample', '--steps', '50', '--out', 'x', '--precision', 'f16', '--momentum-teacher-end', '0.99']);
    const r = { ...recipe('tiny'), ...opts.overrides };
    const { options } = recipeRun(r, 50, 0);
    expect(options.precision).toBe('f16');
    expect(recipeRun(recipe('tiny'), 50, 0).options.precision).toBe('auto');
    const momenta = [0, 25, 49].map((k) => new DinoSchedules(options.schedules).at(k).teacherMomentum);
    expect(momenta.map((m) => m.toFixed(12))).toEqual(momenta.map(() => (0.99).toFixed(12)));
    // DINO's default still ends at 1 (tiny holds 0.99).
    const dflt = new DinoSchedules(recipeRun({ ...recipe('coralbay-b'), momentumTeacher: 0.99 }, 50, 0).options.schedules);
    expect(dflt.at(49).teacherMomentum).toBeGreaterThan(0.9999);
    expect(new DinoSchedules(recipeRun(recipe('tiny'), 50, 0).options.schedules).at(49).teacherMomentum.toFixed(12)).toBe((0.99).toFixed(12));
    expect(() => parsePretrainArgs(['--data', 'sample', '--steps', '5', '--out', 'x', '--precision', 'f8'])).toThrow(/--precision f8: expected auto or f16 or f32/);
  });

  it('passes the loader flags (not recipe values: they never change a step); bad values are refused', () => {
    const opts = parsePretrainArgs(['--data', 'sample', '--steps', '5', '--out', 'x', '--loader-workers', '0', '--data-cache-gb', '0.5', '--prepared-cache', 'cache/']);
    expect(opts.loaderWorkers).toBe(0);
    expect(opts.preparedCache).toBe('cache/');
    expect(opts.dataCacheBytes).toBe(2 ** 29);
    expect(opts.overrides).toEqual({});
    const dflt = parsePretrainArgs(['--data', 'sample', '--steps', '5', '--out', 'x']);
    expect(dflt.loaderWorkers).toBeUndefined();
    expect(dflt.dataCacheBytes).toBeUndefined();
    expect(() => parsePretrainArgs(['--data', 'sample', '--steps', '5', '--out', 'x', '--loader-workers', '1.5'])).toThrow(/--loader-workers 1.5: expected an integer ≥ 0/);
    expect(() => parsePretrainArgs(['--data', 'sample', '--steps', '5', '--out', 'x', '--data-cache-gb', '0'])).toThrow(/--data-cache-gb 0: expected a positive number of GiB/);
  });
});
