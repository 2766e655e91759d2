/**
 * Recipe → run: the augmentation probabilities reach the crop sampler from their flags and are
 * checked as probabilities.
 */
import { describe, expect, it } from 'vitest';
import { recipe, recipeRun } from '../../src/train/pretrain-recipe';
import { parsePretrainArgs } from '../../src/cli/pretrain-args';
import { DEFAULT_AUGMENT } from '../../src/data/augment';

describe('pretrain recipe', () => {
  it('passes the augmentation probabilities to the crops, defaulting to the augment module', () => {
    const { spec } = recipeRun(recipe('tiny'), 10, 0);
    expect(spec.crops.augment).toEqual({ flipProb: DEFAULT_AUGMENT.flipProb, smoothProb: DEFAULT_AUGMENT.smoothProb, histogramShiftProb: DEFAULT_AUGMENT.histogramShiftProb });
    const opts = parsePretrainArgs(['--data', 'sample', '--steps', '5', '--out', 'x', '--flip-prob', '0', '--smooth-prob', '0.25', '--histogram-shift-prob', '1']);
    const r = { ...recipe('tiny'), ...opts.overrides };
    expect(recipeRun(r, 5, 0).spec.crops.augment).toEqual({ flipProb: 0, smoothProb: 0.25, histogramShiftProb: 1 });
  });

  it('rejects a probability outside [0, 1] by its flag name', () => {
    expect(() => recipeRun({ ...recipe('tiny'), flipProb: 1.5 }, 10, 0)).toThrow(/--flip-prob 1.5: expected a probability/);
    expect(() => recipeRun({ ...recipe('tiny'), histogramShiftProb: -0.1 }, 10, 0)).toThrow(/--histogram-shift-prob -0.1/);
  });
});
