/**
 * The token layout of MONAI's 3D shifted windows, in float64-reference form: windows tile the
 * padded volume (Dp, Hp, Wp) in the rolled frame; token t of a window sits at rolled-frame position
 * pos[t] ((z, y, x) row-major), reads the volume at (pos + shift) mod (Dp, Hp, Wp) (torch.roll by
 * −shift), and that source is padding when it lies past (D, H, W).
 */
import { shiftRegionLabels, type Vec3 } from '../../src/models/swin3d/window-geometry';

export interface WindowTokens {
  b: number;
  /** Rolled-frame position of each token. */
  pos: Vec3[];
  /** Element offset of each token's source in x [B, D, H, W, C], or −1 for a padded token. */
  at: number[];
  /** compute_mask's shift-region label of each token (0 everywhere when nothing is shifted). */
  label: number[];
}

export function forEachWindow(shape: readonly number[], win: Vec3, shift: Vec3, visit: (w: WindowTokens) => void): void {
  const [B, D, H, W, C] = shape as [number, number, number, number, number];
  const [wd, wh, ww] = win;
  const [Dp, Hp, Wp] = [Math.ceil(D / wd) * wd, Math.ceil(H / wh) * wh, Math.ceil(W / ww) * ww];
  const n = wd * wh * ww;
  const labels = shift.some((s) => s > 0) ? shiftRegionLabels([Dp, Hp, Wp], win, shift) : null;
  for (let b = 0; b < B; b++)
    for (let zd = 0; zd < Dp / wd; zd++)
      for (let zh = 0; zh < Hp / wh; zh++)
        for (let zw = 0; zw < Wp / ww; zw++) {
          const pos: Vec3[] = [];
          for (let t = 0; t < n; t++) pos.push([zd * wd + Math.floor(t / (wh * ww)), zh * wh + (Math.floor(t / ww) % wh), zw * ww + (t % ww)]);
          const at = pos.map((P) => {
            const [d, h, w] = [(P[0] + shift[0]) % Dp, (P[1] + shift[1]) % Hp, (P[2] + shift[2]) % Wp];
            return d < D && h < H && w < W ? (((b * D + d) * H + h) * W + w) * C : -1;
          });
          const label = pos.map((P) => (labels ? labels[(P[0] * Hp + P[1]) * Wp + P[2]]! : 0));
          visit({ b, pos, at, label });
        }
}
