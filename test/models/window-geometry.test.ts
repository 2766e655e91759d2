/**
 * Window geometry against MONAI's rules, with values worked out by hand: the effective window and
 * shift per stage, the relative-position index (including the [:n, :n] slice for a smaller stage
 * window), and the 27 shift-region labels.
 */
import { describe, expect, it } from 'vitest';
import { relativePositionIndex, shiftRegionLabels, stageRelativeIndex, windowAndShift } from '../../src/models/swin3d/window-geometry';

describe('windowAndShift (MONAI get_window_size)', () => {
  it('96³ input: stages 1–3 keep 7³ and shift 3, stage 4 (6³) takes window 6 and no shift', () => {
    expect(windowAndShift([48, 48, 48], [7, 7, 7], [3, 3, 3])).toEqual({ window: [7, 7, 7], shift: [3, 3, 3] });
    expect(windowAndShift([12, 12, 12], [7, 7, 7], [3, 3, 3])).toEqual({ window: [7, 7, 7], shift: [3, 3, 3] });
    expect(windowAndShift([6, 6, 6], [7, 7, 7], [3, 3, 3])).toEqual({ window: [6, 6, 6], shift: [0, 0, 0] });
  });
  it('decides per axis (a 7-long axis counts as no longer than the window)', () => {
    expect(windowAndShift([20, 7, 5], [7, 7, 7], [3, 3, 3])).toEqual({ window: [7, 7, 5], shift: [3, 0, 0] });
  });
});

describe('relativePositionIndex', () => {
  it('a 2×2×2 window: 27-row table, the diagonal is the centre entry, entries follow the formula', () => {
    const idx = relativePositionIndex([2, 2, 2]);
    expect(idx.length).toBe(64);
    for (let i = 0; i < 8; i++) expect(idx[i * 8 + i]).toBe(13); // (1, 1, 1) → 1·9 + 1·3 + 1
    // token 0 = (0,0,0), token 7 = (1,1,1): rel (−1,−1,−1) + 1 = (0,0,0) → 0; and the reverse → 26
    expect(idx[0 * 8 + 7]).toBe(0);
    expect(idx[7 * 8 + 0]).toBe(26);
    // token 1 = (0,0,1), token 2 = (0,1,0): rel (0, −1, +1) + 1 = (1, 0, 2) → 9 + 0 + 2
    expect(idx[1 * 8 + 2]).toBe(11);
  });
  it('7³ spans all 2197 table rows', () => {
    const idx = relativePositionIndex([7, 7, 7]);
    expect(idx.length).toBe(343 * 343);
    expect(new Set(idx).size).toBe(13 ** 3);
    expect(Math.max(...idx)).toBe(2196);
  });
  it('a 6³ stage uses the top-left 216×216 block of the 7³ index, which differs from the 6³ index', () => {
    const full = relativePositionIndex([7, 7, 7]);
    const stage = stageRelativeIndex([7, 7, 7], [6, 6, 6]);
    expect(stage.length).toBe(216 * 216);
    expect(stage[5 * 216 + 100]).toBe(full[5 * 343 + 100]);
    expect(stage[215 * 216 + 215]).toBe(full[215 * 343 + 215]);
    const geometric = relativePositionIndex([6, 6, 6]);
    expect(Array.from(stage).some((v, i) => v !== geometric[i])).toBe(true);
  });
});

describe('shiftRegionLabels (MONAI compute_mask)', () => {
  it('14³ padded, window 7, shift 3: bands [0,7), [7,11), [11,14) per axis', () => {
    const labels = shiftRegionLabels([14, 14, 14], [7, 7, 7], [3, 3, 3]);
    const at = (d: number, h: number, w: number) => labels[(d * 14 + h) * 14 + w];
    expect(at(0, 0, 0)).toBe(0);
    expect(at(6, 6, 6)).toBe(0);
    expect(at(7, 0, 0)).toBe(9);
    expect(at(10, 10, 10)).toBe(13);
    expect(at(11, 7, 13)).toBe(18 + 3 + 2);
    expect(at(13, 13, 13)).toBe(26);
    expect(new Set(labels).size).toBe(27);
  });
  it('no shift: a single region (MONAI labels it 26: the whole-axis slice is assigned last)', () => {
    expect(new Set(shiftRegionLabels([6, 6, 6], [6, 6, 6], [0, 0, 0]))).toEqual(new Set([26]));
  });
  it('shift on one axis only splits along that axis', () => {
    const labels = shiftRegionLabels([14, 7, 5], [7, 7, 5], [3, 0, 0]);
    expect(new Set(labels)).toEqual(new Set([0 + 8, 9 + 8, 18 + 8]));
  });
});
