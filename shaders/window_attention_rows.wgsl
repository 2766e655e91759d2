// 3D shifted-window attention forward for CPU adapters (lavapipe, SwiftShader). Same contract as
// window_attention.wgsl's `forward` (its backward, or window_attention_rows_backward.wgsl on CPU
// adapters, consumes the lse written here). What differs is the schedule, chosen for how a CPU
// adapter runs a workgroup: as one loop over SIMD lanes.
//   - No workgroup memory and no barriers: each barrier is a pass over the whole workgroup there.
//   - A load whose address is not a compile-time constant is done lane by lane with a bounds check
//     each, even when all lanes share the address. So loads are made few and wide: k and v are read
//     as vec4, and every key read serves TQ queries of the invocation (register blocking).
//   - Scores go straight into an online softmax per key, so no private array is indexed by a loop
//     counter (such arrays are also accessed lane by lane).
// One workgroup covers WG·TQ queries of one (batch, window, head); query i of the chunk is handled
// by lane i % WG, slot i / WG. Keys are visited in window order; the bias index and shift-region
// label follow MONAI (see window_attention.wgsl's header). Integer division is also lane by lane
// there, so the per-key loop counts positions instead of dividing.
// Only queries at real tokens are computed: a padded query's output is dropped, so its row does
// nothing but cost (on small grids most of them: 16³ padded to 21³ leaves 44 % real, 8³ to 14³
// 19 %). Per axis a window's real positions are [0, a) ∪ [b, w) in the rolled frame; chunk c of a
// row takes real queries c·WG·TQ … of that product set, so trailing chunks have no work. Padded
// queries get lse = 3e38, which makes every backward's p = exp(s − lse) exactly 0 for them (their
// dO is 0, so their terms were 0 before too).

alias T = f32;

const WG: u32 = 32u;
const H4: u32 = 4u;  // head dimension / 4
const TQ: u32 = 4u;  // queries per invocation

struct Params {
  B: u32, D: u32, H: u32, W: u32,
  C: u32, heads: u32, n: u32, nWin: u32,
  wd: u32, wh: u32, ww: u32, nwh: u32,
  nww: u32, sd: u32, sh: u32, sw: u32,
  Dp: u32, Hp: u32, Wp: u32, cz: u32,
  cy: u32, cx: u32, rows: u32, scale: f32,
  // q, k, v rows: ld elements apart, k and v partStep after q (C and 0 for three tensors;
  // 3C and C when all three are read from the qkv projection's output in place).
  ld: u32, partStep: u32,
}

@group(0) @binding(0) var<storage, read> q: array<vec4<T>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<T>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<T>>;
@group(0) @binding(3) var<storage, read> qkvBias: array<vec4<T>>;
@group(0) @binding(4) var<storage, read> table: array<T>;
@group(0) @binding(5) var<storage, read_write> o: array<vec4<T>>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;  // [rows][n]
@group(0) @binding(7) var<uniform> p: Params;

// Band of a rolled-frame coordinate among compute_mask's three slices (2 on unshifted axes).
fn band(pos: u32, size: u32, w: u32, s: u32) -> u32 {
  if (s == 0u) { return 2u; }
  if (pos < size - w) { return 0u; }
  if (pos < size - s) { return 1u; }
  return 2u;
}

// Linear bias-table offset of configured-window coordinates: index(a, b) = lin(a) − lin(b) + lin(c − 1).
fn linRel(r: vec3i) -> i32 {
  return (r.x * (2 * i32(p.cy) - 1) + r.y) * (2 * i32(p.cx) - 1) + r.z;
}

// x mod n for 0 ≤ x < 2n, without a division.
fn wrap(x: u32, n: u32) -> u32 {
  return select(x, x - n, x >= n);
}

// Source token (or −1 for padding) of rolled-frame position P.
fn source(b: u32, P: vec3u) -> i32 {
  let d = (P.x + p.sd) % p.Dp;
  let h = (P.y + p.sh) % p.Hp;
  let w = (P.z + p.sw) % p.Wp;
  return select(-1, i32(((b * p.D + d) * p.H + h) * p.W + w), d < p.D && h < p.H && w < p.W);
}

// q, k or v (part 0, 1, 2) of a token for head h as vec4s; padding reads the qkv bias.
fn load4(part: u32, src: i32, h: u32, e4: u32) -> vec4f {
  let col = (h * H4 + e4);
  if (src < 0) { return vec4f(qkvBias[part * (p.C / 4u) + col]); }
  let at = u32(src) * (p.ld / 4u) + part * (p.partStep / 4u) + col;
  if (part == 0u) { return vec4f(q[at]); }
  if (part == 1u) { return vec4f(k[at]); }
  return vec4f(v[at]);
}

// Real positions of one window axis in the rolled frame: [0, a) ∪ [b, w), from the window origin
// o, shift s, unpadded size n and padded size np: source (o + k + s) mod np must lie below n.
fn realRange(o: u32, w: u32, s: u32, n: u32, np: u32) -> vec2u {
  let a = clamp(i32(n) - i32(o + s), 0, i32(w));
  let b = clamp(i32(np) - i32(o + s), a, i32(w));
  return vec2u(u32(a), u32(b));
}

// The r-th real position of an axis whose real range is ab.
fn realAt(r: u32, ab: vec2u) -> u32 {
  return select(ab.y + r - ab.x, r, r < ab.x);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let flat = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
  let chunks = (p.n + WG * TQ - 1u) / (WG * TQ);
  let row = flat / chunks;
  if (row >= p.rows) { return; }  // uniform per workgroup
  let h = row % p.heads;
  let bw = row / p.heads;
  let win = bw % p.nWin;
  let b = bw / p.nWin;
  let o0 = vec3u((win / (p.nww * p.nwh)) * p.wd, ((win / p.nww) % p.nwh) * p.wh, (win % p.nww) * p.ww);
  let cOff = linRel(vec3i(i32(p.cz) - 1, i32(p.cy) - 1, i32(p.cx) - 1));
  let rz = realRange(o0.x, p.wd, p.sd, p.D, p.Dp);
  let ry = realRange(o0.y, p.wh, p.sh, p.H, p.Hp);
  let rx = realRange(o0.z, p.ww, p.sw, p.W, p.Wp);
  let nz = rz.x + p.wd - rz.y;
  let ny = ry.x + p.wh - ry.y;
  let nx = rx.x + p.ww - rx.y;
  let nReal = nz * ny * nx;
  let c0 = (flat % chunks) * WG * TQ;
  // This chunk's window positions that are padding: their lse, once each.
  for (var t = 0u; t < TQ; t++) {
    let i = c0 + t * WG + lid.x;
    if (i < p.n) {
      let e = vec3u(i / (p.wh * p.ww), (i / p.ww) % p.wh, i % p.ww);
      let real = (e.x < rz.x || e.x >= rz.y) && (e.y < ry.x || e.y >= ry.y) && (e.z < rx.x || e.z >= rx.y);
      if (!real) { lse[row * p.n + i] = 3.0e38; }
    }
  }
  if (c0 >= nReal) { return; }  // uniform per workgroup

  var qi: array<array<vec4f, H4>, TQ>;
  var offI: array<i32, TQ>;
  var labelI: array<u32, TQ>;
  var srcI: array<i32, TQ>;
  var m: array<f32, TQ>;
  var l: array<f32, TQ>;
  var acc: array<array<vec4f, H4>, TQ>;
  var iI: array<u32, TQ>;
  for (var t = 0u; t < TQ; t++) {
    let r = min(c0 + t * WG + lid.x, nReal - 1u);
    let e = vec3u(realAt(r / (ny * nx), rz), realAt((r / nx) % ny, ry), realAt(r % nx, rx));
    let i = (e.x * p.wh + e.y) * p.ww + e.z;
    iI[t] = i;
    let P = o0 + e;
    srcI[t] = source(b, P);
    for (var e4 = 0u; e4 < H4; e4++) {
      qi[t][e4] = load4(0u, srcI[t], h, e4) * p.scale;
      acc[t][e4] = vec4f(0.0);  // explicit: lavapipe keeps a loop-local var's old value
    }
    // MONAI numbers the effective window's tokens in the configured window's shape for the index.
    offI[t] = linRel(vec3i(i32(i / (p.cy * p.cx)), i32((i / p.cx) % p.cy), i32(i % p.cx))) + cOff;
    labelI[t] = 9u * band(P.x, p.Dp, p.wd, p.sd) + 3u * band(P.y, p.Hp, p.wh, p.sh) + band(P.z, p.Wp, p.ww, p.sw);
    m[t] = -3.0e38;
    l[t] = 0.0;
  }

  // Keys in window order by nested loops: integer division is lane by lane on a CPU adapter, so
  // none happens per key. rel counts key j in the configured window's numbering (MONAI's quirk).
  var rel = vec3i(0, 0, 0);
  for (var kz = 0u; kz < p.wd; kz++) {
    let d = wrap(o0.x + kz + p.sd, p.Dp);
    let bz = 9u * band(o0.x + kz, p.Dp, p.wd, p.sd);
    for (var ky = 0u; ky < p.wh; ky++) {
      let hh = wrap(o0.y + ky + p.sh, p.Hp);
      let labelRow = bz + 3u * band(o0.y + ky, p.Hp, p.wh, p.sh);
      let rowBase = (b * p.D + d) * p.H + hh;
      let rowInside = d < p.D && hh < p.H;
      for (var kx = 0u; kx < p.ww; kx++) {
        let w = wrap(o0.z + kx + p.sw, p.Wp);
        let src = select(-1, i32(rowBase * p.W + w), rowInside && w < p.W);
        let label = labelRow + band(o0.z + kx, p.Wp, p.ww, p.sw);
        let offJ = linRel(rel);
        rel.z += 1;
        if (rel.z == i32(p.cx)) { rel.z = 0; rel.y += 1; }
        if (rel.y == i32(p.cy)) { rel.y = 0; rel.x += 1; }
        var kj: array<vec4f, H4>;
        var vj: array<vec4f, H4>;
        for (var e4 = 0u; e4 < H4; e4++) {
          kj[e4] = load4(1u, src, h, e4);
          vj[e4] = load4(2u, src, h, e4);
        }
        for (var t = 0u; t < TQ; t++) {
          var s = f32(table[u32(offI[t] - offJ) * p.heads + h]);
          for (var e4 = 0u; e4 < H4; e4++) { s += dot(qi[t][e4], kj[e4]); }
          if (label != labelI[t]) { s -= 100.0; }
          // One exp per score: either the running max moves up to s (rescale by e^(m−s), weight 1)
          // or it stays (no rescale, weight e^(s−m)).
          let x = exp(-abs(s - m[t]));
          let up = s > m[t];
          let corr = select(1.0, x, up);
          let pj = select(x, 1.0, up);
          l[t] = l[t] * corr + pj;
          for (var e4 = 0u; e4 < H4; e4++) { acc[t][e4] = acc[t][e4] * corr + pj * vj[e4]; }
          m[t] = max(m[t], s);
        }
      }
    }
  }

  for (var t = 0u; t < TQ; t++) {
    if (c0 + t * WG + lid.x < nReal) {
      lse[row * p.n + iI[t]] = m[t] + log(l[t]);
      if (srcI[t] >= 0) {
        for (var e4 = 0u; e4 < H4; e4++) { o[u32(srcI[t]) * (p.C / 4u) + h * H4 + e4] = vec4<T>(acc[t][e4] / l[t]); }
      }
    }
  }
}
