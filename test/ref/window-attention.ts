/**
 * float64 reference of the fused shifted-window attention (q, k, v taken directly; a padded
 * token's q/k/v is the qkv bias; −100 between shift regions) and its vector–Jacobian product, by
 * plain loops over MONAI's window layout (test/ref/windows.ts). test/ops/window-attention3d.test.ts
 * checks the VJP by finite differences; the Deno slice (test/deno/cases.ts) uses it too.
 */
import { arr, type Arr } from './array';
import { forEachWindow } from './windows';
import { stageRelativeIndex, type Vec3 } from '../../src/models/swin3d/window-geometry';

export interface AttentionGeometry {
  heads: number;
  win: Vec3;
  shift: Vec3;
  /** Configured window: the relative-position table and index belong to it. */
  cfg: Vec3;
}

/** xs = [q, k, v ([B, D, H, W, C]), qkvBias [3C], table [T, heads]]; with g, also the gradients of all five. */
export function refWindowAttention(xs: Arr[], geo: AttentionGeometry, g?: Arr): { out: Arr; grads: Arr[] } {
  const [q, k, v, bias, table] = xs as [Arr, Arr, Arr, Arr, Arr];
  const { heads, win, shift, cfg } = geo;
  const C = q.shape[4]!;
  const n = win[0] * win[1] * win[2];
  const hd = C / heads;
  const scale = hd ** -0.5;
  const index = stageRelativeIndex(cfg, win);
  const out = arr(q.shape);
  const grads = [arr(q.shape), arr(k.shape), arr(v.shape), arr(bias.shape), arr(table.shape)];
  const [dq, dk, dv, db, dt] = grads as [Arr, Arr, Arr, Arr, Arr];
  forEachWindow(q.shape, win, shift, ({ at, label }) => {
    for (let h = 0; h < heads; h++) {
      // Element e of head h of token t of part (0 q, 1 k, 2 v); padded tokens read the bias.
      const val = (x: Arr, part: number, t: number, e: number) => (at[t]! >= 0 ? x.data[at[t]! + h * hd + e]! : bias.data[part * C + h * hd + e]!);
      const P = new Float64Array(n * n);
      for (let i = 0; i < n; i++) {
        let m = -Infinity;
        for (let j = 0; j < n; j++) {
          let s = table.data[index[i * n + j]! * heads + h]!;
          for (let e = 0; e < hd; e++) s += val(q, 0, i, e) * scale * val(k, 1, j, e);
          if (label[i] !== label[j]) s -= 100;
          P[i * n + j] = s;
          m = Math.max(m, s);
        }
        let z = 0;
        for (let j = 0; j < n; j++) z += P[i * n + j] = Math.exp(P[i * n + j]! - m);
        for (let j = 0; j < n; j++) P[i * n + j] = P[i * n + j]! / z;
        if (at[i]! < 0) continue;
        for (let e = 0; e < hd; e++) {
          let acc = 0;
          for (let j = 0; j < n; j++) acc += P[i * n + j]! * val(v, 2, j, e);
          out.data[at[i]! + h * hd + e] = acc;
        }
      }
      if (!g) continue;
      // Rows of padded queries are cropped away, so their upstream gradient is zero; gradients
      // reaching padded keys and values belong to the bias.
      const gOut = (i: number, e: number) => (at[i]! >= 0 ? g.data[at[i]! + h * hd + e]! : 0);
      const accumulate = (x: Arr, part: number, t: number, e: number, d: number) => {
        const [target, o] = at[t]! >= 0 ? [x, at[t]! + h * hd + e] : [db, part * C + h * hd + e];
        target.data[o] = target.data[o]! + d;
      };
      for (let i = 0; i < n; i++) {
        let rowDot = 0;
        if (at[i]! >= 0) for (let e = 0; e < hd; e++) rowDot += gOut(i, e) * out.data[at[i]! + h * hd + e]!;
        for (let j = 0; j < n; j++) {
          const p = P[i * n + j]!;
          let dp = 0;
          for (let e = 0; e < hd; e++) dp += gOut(i, e) * val(v, 2, j, e);
          const ds = p * (dp - rowDot);
          for (let e = 0; e < hd; e++) {
            accumulate(dv, 2, j, e, p * gOut(i, e));
            accumulate(dq, 0, i, e, ds * val(k, 1, j, e) * scale);
            accumulate(dk, 1, j, e, ds * val(q, 0, i, e) * scale);
          }
          const r = index[i * n + j]! * heads + h;
          dt.data[r] = dt.data[r]! + ds;
        }
      }
    }
  });
  return { out, grads };
}
