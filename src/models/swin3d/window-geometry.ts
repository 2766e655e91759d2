/**
 * Window geometry of MONAI's 3D Swin, computed on the host: the effective window and shift of a
 * stage, the relative-position-bias index (with MONAI's quirk of slicing the configured window's
 * index when a stage's window is smaller), and the shift-region label of every padded position.
 * The attention kernels read these as small tables; the rules follow MONAI's swin_unetr.py.
 */

export type Vec3 = readonly [number, number, number];

/** MONAI get_window_size: an axis no longer than the window uses the whole axis and no shift. */
export function windowAndShift(size: Vec3, window: Vec3, shift: Vec3): { window: [number, number, number]; shift: [number, number, number] } {
  const w: [number, number, number] = [window[0], window[1], window[2]];
  const s: [number, number, number] = [shift[0], shift[1], shift[2]];
  for (let i = 0; i < 3; i++) {
    if (size[i]! <= window[i]!) {
      w[i] = size[i]!;
      s[i] = 0;
    }
  }
  return { window: w, shift: s };
}

/**
 * Relative-position index for a (wd, wh, ww) window: N×N entries into the
 * (2wd−1)(2wh−1)(2ww−1)-row bias table, tokens in (z, y, x) row-major order.
 */
export function relativePositionIndex(win: Vec3): Int32Array {
  const [wd, wh, ww] = win;
  const n = wd * wh * ww;
  const coords = (t: number): Vec3 => [Math.floor(t / (wh * ww)), Math.floor(t / ww) % wh, t % ww];
  const out = new Int32Array(n * n);
  for (let i = 0; i < n; i++) {
    const a = coords(i);
    for (let j = 0; j < n; j++) {
      const b = coords(j);
      const rd = a[0] - b[0] + wd - 1;
      const rh = a[1] - b[1] + wh - 1;
      const rw = a[2] - b[2] + ww - 1;
      out[i * n + j] = rd * (2 * wh - 1) * (2 * ww - 1) + rh * (2 * ww - 1) + rw;
    }
  }
  return out;
}

/**
 * The index a stage uses: MONAI builds it for the configured window and, when the stage's window
 * is smaller (e.g. 6³ in stage 4 of a 96³ input), takes its top-left n×n block — not the
 * geometrically correct index of the smaller window. Pretrained weights expect exactly this.
 */
export function stageRelativeIndex(configured: Vec3, effective: Vec3): Int32Array {
  const full = relativePositionIndex(configured);
  const N = configured[0] * configured[1] * configured[2];
  const n = effective[0] * effective[1] * effective[2];
  const out = new Int32Array(n * n);
  for (let i = 0; i < n; i++) out.set(full.subarray(i * N, i * N + n), i * n);
  return out;
}

/**
 * MONAI compute_mask's region label (0…26) of every position of the padded volume (Dp, Hp, Wp):
 * per axis the slices [0, −w), [−w, −s), [−s, end) count 0, 1, 2. In a shifted window, attention
 * between tokens of different labels gets −100. On an axis with no shift, Python's slice(−0, None)
 * is the whole axis and, assigned last, labels every position 2, so that axis splits nothing.
 */
export function shiftRegionLabels(padded: Vec3, win: Vec3, shift: Vec3): Uint8Array {
  const band = (p: number, size: number, w: number, s: number) => (s === 0 ? 2 : p < size - w ? 0 : p < size - s ? 1 : 2);
  const [Dp, Hp, Wp] = padded;
  const out = new Uint8Array(Dp * Hp * Wp);
  for (let d = 0; d < Dp; d++)
    for (let h = 0; h < Hp; h++)
      for (let w = 0; w < Wp; w++) {
        out[(d * Hp + h) * Wp + w] = 9 * band(d, Dp, win[0], shift[0]) + 3 * band(h, Hp, win[1], shift[1]) + band(w, Wp, win[2], shift[2]);
      }
  return out;
}
