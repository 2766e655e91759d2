// 3D shifted-window attention (MONAI Swin), fused: no rolled, padded or partitioned copies and no
// n×n score tensor in global memory. One workgroup per (batch, window, head).
//
// Rolled-frame position P (window-major, tokens in (z, y, x) order) reads the padded volume at
// (P + shift) mod (Dp, Hp, Wp); a source past (D, H, W) is padding, whose q/k/v equal the qkv bias.
//   s_ij = (q_i·k_j)·scale + table[idx(i, j), h] + (label(P_i) ≠ label(P_j) ? −100 : 0)
// idx is MONAI's index of the configured window, top-left n×n block (tokens numbered in the
// configured window's row-major order); the labels are compute_mask's shift regions.
// Forward: online softmax over key tiles staged in workgroup memory; stores lse_i = m_i + log l_i.
// Backward (recomputes p_ij = exp(s_ij − lse_i)):
//   D_i = Σ_e dO_ie·O_ie, dp_ij = dO_i·v_j, ds_ij = p_ij (dp_ij − D_i),
//   dq_i = scale Σ_j ds_ij k_j,  dk_j = scale Σ_i ds_ij q_i,  dv_j = Σ_i p_ij dO_i,  dtable[idx_ij] += ds_ij.
// Every sum runs in a fixed order: dq over j per query invocation; dk, dv over i per key
// invocation; the table gradient in workgroup memory, one query row at a time (for a fixed i the
// map j → idx_ij is injective, so no two invocations touch one entry between barriers); padded
// keys' dk, dv by a fixed tree. Per-window partials are summed over windows by the reduce kernel.

alias T = f32;

const WG: u32 = 64u;
const HD: u32 = 3u;        // head dimension
const NMAX: u32 = 343u;    // most tokens per window (the configured window's)
const TABLE: u32 = 2197u;  // rows of the bias table: (2cz−1)(2cy−1)(2cx−1)
const TK: u32 = 64u;       // keys per forward tile (≤ WG; smaller for wide heads, to fit workgroup memory)

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

@group(0) @binding(0) var<storage, read> q: array<T>;
@group(0) @binding(1) var<storage, read> k: array<T>;
@group(0) @binding(2) var<storage, read> v: array<T>;
@group(0) @binding(3) var<storage, read> qkvBias: array<T>;
@group(0) @binding(4) var<storage, read> table: array<T>;
@group(0) @binding(5) var<storage, read_write> o: array<T>;        // forward output; read by backward
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;    // [rows][n]
@group(0) @binding(7) var<storage, read> dOut: array<T>;
@group(0) @binding(8) var<storage, read_write> dq: array<T>;
@group(0) @binding(9) var<storage, read_write> dk: array<T>;
@group(0) @binding(10) var<storage, read_write> dv: array<T>;
@group(0) @binding(11) var<storage, read_write> dtablePart: array<f32>;  // [windows][TABLE][heads]
@group(0) @binding(12) var<storage, read_write> dbiasPart: array<f32>;   // [windows][3C]
@group(0) @binding(13) var<uniform> p: Params;

struct Tok {
  src: i32,      // token index in [B, D, H, W], or −1 for padding
  label: u32,    // shift-region label of the rolled-frame position
  rel: vec3i,    // coordinates in the configured window's numbering (for the bias index)
}

fn band(pos: u32, size: u32, w: u32, s: u32) -> u32 {
  if (s == 0u) { return 2u; }
  if (pos < size - w) { return 0u; }
  if (pos < size - s) { return 1u; }
  return 2u;
}

fn token(b: u32, win: u32, t: u32) -> Tok {
  let zw = win % p.nww;
  let zh = (win / p.nww) % p.nwh;
  let zd = win / (p.nww * p.nwh);
  let P = vec3u(zd * p.wd + t / (p.wh * p.ww), zh * p.wh + (t / p.ww) % p.wh, zw * p.ww + t % p.ww);
  let d = (P.x + p.sd) % p.Dp;
  let h = (P.y + p.sh) % p.Hp;
  let w = (P.z + p.sw) % p.Wp;
  var tok: Tok;
  tok.src = select(-1, i32(((b * p.D + d) * p.H + h) * p.W + w), d < p.D && h < p.H && w < p.W);
  tok.label = 9u * band(P.x, p.Dp, p.wd, p.sd) + 3u * band(P.y, p.Hp, p.wh, p.sh) + band(P.z, p.Wp, p.ww, p.sw);
  tok.rel = vec3i(i32(t / (p.cy * p.cx)), i32((t / p.cx) % p.cy), i32(t % p.cx));
  return tok;
}

fn relIndex(a: vec3i, b: vec3i) -> u32 {
  let r = a - b + vec3i(i32(p.cz) - 1, i32(p.cy) - 1, i32(p.cx) - 1);
  return u32((r.x * (2 * i32(p.cy) - 1) + r.y) * (2 * i32(p.cx) - 1) + r.z);
}

// Bias and mask of score (i, j) for head h.
fn scoreBias(relI: vec3i, labelI: u32, relJ: vec3i, labelJ: u32, h: u32) -> f32 {
  var s = f32(table[relIndex(relI, relJ) * p.heads + h]);
  if (labelI != labelJ) { s -= 100.0; }
  return s;
}

fn loadQ(src: i32, h: u32) -> array<f32, HD> {
  var r: array<f32, HD>;
  for (var e = 0u; e < HD; e++) { r[e] = 0.0; }  // explicit: lavapipe keeps a loop-local var's old value
  for (var e = 0u; e < HD; e++) {
    if (src >= 0) { r[e] = f32(q[u32(src) * p.ld + h * HD + e]); } else { r[e] = f32(qkvBias[h * HD + e]); }
  }
  return r;
}

fn loadK(src: i32, h: u32) -> array<f32, HD> {
  var r: array<f32, HD>;
  for (var e = 0u; e < HD; e++) { r[e] = 0.0; }  // explicit: lavapipe keeps a loop-local var's old value
  for (var e = 0u; e < HD; e++) {
    if (src >= 0) { r[e] = f32(k[u32(src) * p.ld + p.partStep + h * HD + e]); } else { r[e] = f32(qkvBias[p.C + h * HD + e]); }
  }
  return r;
}

fn loadV(src: i32, h: u32) -> array<f32, HD> {
  var r: array<f32, HD>;
  for (var e = 0u; e < HD; e++) { r[e] = 0.0; }  // explicit: lavapipe keeps a loop-local var's old value
  for (var e = 0u; e < HD; e++) {
    if (src >= 0) { r[e] = f32(v[u32(src) * p.ld + 2u * p.partStep + h * HD + e]); } else { r[e] = f32(qkvBias[2u * p.C + h * HD + e]); }
  }
  return r;
}

// dOut of a token; zero for padding (its output is dropped).
fn loadG(src: i32, h: u32) -> array<f32, HD> {
  var r: array<f32, HD>;
  for (var e = 0u; e < HD; e++) { r[e] = 0.0; }  // explicit: lavapipe keeps a loop-local var's old value
  if (src >= 0) {
    for (var e = 0u; e < HD; e++) { r[e] = f32(dOut[u32(src) * p.C + h * HD + e]); }
  }
  return r;
}

fn dotHD(a: array<f32, HD>, b: array<f32, HD>) -> f32 {
  var s = 0.0;
  for (var e = 0u; e < HD; e++) { s += a[e] * b[e]; }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------

var<workgroup> tileK: array<f32, TK * HD>;
var<workgroup> tileV: array<f32, TK * HD>;
var<workgroup> tileInfo: array<vec4i, TK>;  // rel.xyz, label

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
  if (row >= p.rows) { return; }  // uniform per workgroup
  let h = row % p.heads;
  let bw = row / p.heads;
  let win = bw % p.nWin;
  let b = bw / p.nWin;
  for (var i0 = 0u; i0 < p.n; i0 += WG) {
    let i = i0 + lid.x;
    let ti = token(b, win, min(i, p.n - 1u));
    let qi = loadQ(ti.src, h);
    var m = -3.0e38;
    var l = 0.0;
    var acc: array<f32, HD>;
    for (var e = 0u; e < HD; e++) { acc[e] = 0.0; }  // explicit: lavapipe keeps a loop-local var's old value
    for (var j0 = 0u; j0 < p.n; j0 += TK) {
      workgroupBarrier();
      let j = j0 + lid.x;
      if (lid.x < TK && j < p.n) {
        let tj = token(b, win, j);
        let kj = loadK(tj.src, h);
        let vj = loadV(tj.src, h);
        for (var e = 0u; e < HD; e++) {
          tileK[lid.x * HD + e] = kj[e];
          tileV[lid.x * HD + e] = vj[e];
        }
        tileInfo[lid.x] = vec4i(tj.rel, i32(tj.label));
      }
      workgroupBarrier();
      let cnt = min(TK, p.n - j0);
      for (var jj = 0u; jj < cnt; jj++) {
        var s = 0.0;
        for (var e = 0u; e < HD; e++) { s += qi[e] * tileK[jj * HD + e]; }
        let info = tileInfo[jj];
        s = s * p.scale + scoreBias(ti.rel, ti.label, info.xyz, u32(info.w), h);
        let mNew = max(m, s);
        let corr = exp(m - mNew);
        let pj = exp(s - mNew);
        l = l * corr + pj;
        for (var e = 0u; e < HD; e++) { acc[e] = acc[e] * corr + pj * tileV[jj * HD + e]; }
        m = mNew;
      }
    }
    if (i < p.n) {
      lse[row * p.n + i] = m + log(l);
      if (ti.src >= 0) {
        for (var e = 0u; e < HD; e++) { o[u32(ti.src) * p.C + h * HD + e] = T(acc[e] / l); }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Backward
// ---------------------------------------------------------------------------------------------

var<workgroup> lseW: array<f32, NMAX>;
var<workgroup> deltaW: array<f32, NMAX>;
var<workgroup> dtab: array<f32, TABLE>;
var<workgroup> red: array<f32, WG>;

fn workgroupSum(x: f32, lane: u32) -> f32 {
  red[lane] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lane < s) { red[lane] += red[lane + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
  if (row >= p.rows) { return; }  // uniform per workgroup
  let h = row % p.heads;
  let bw = row / p.heads;
  let win = bw % p.nWin;
  let b = bw / p.nWin;
  let n = p.n;

  for (var r = lid.x; r < TABLE; r += WG) { dtab[r] = 0.0; }
  for (var i = lid.x; i < n; i += WG) {
    let ti = token(b, win, i);
    lseW[i] = lse[row * n + i];
    var delta = 0.0;
    if (ti.src >= 0) {
      for (var e = 0u; e < HD; e++) {
        let at = u32(ti.src) * p.C + h * HD + e;
        delta += f32(dOut[at]) * f32(o[at]);
      }
    }
    deltaW[i] = delta;
  }
  workgroupBarrier();

  // dq: one query row per invocation, keys in order. Padded queries have zero gradient.
  for (var i = lid.x; i < n; i += WG) {
    let ti = token(b, win, i);
    if (ti.src >= 0) {
      let qi = loadQ(ti.src, h);
      let gi = loadG(ti.src, h);
      let lseI = lseW[i];
      let deltaI = deltaW[i];
      var g: array<f32, HD>;
      for (var e = 0u; e < HD; e++) { g[e] = 0.0; }
      for (var j = 0u; j < n; j++) {
        let tj = token(b, win, j);
        let kj = loadK(tj.src, h);
        let vj = loadV(tj.src, h);
        let s = dotHD(qi, kj) * p.scale + scoreBias(ti.rel, ti.label, tj.rel, tj.label, h);
        let pij = exp(s - lseI);
        let ds = pij * (dotHD(gi, vj) - deltaI);
        for (var e = 0u; e < HD; e++) { g[e] += ds * kj[e]; }
      }
      for (var e = 0u; e < HD; e++) { dq[u32(ti.src) * p.C + h * HD + e] = T(g[e] * p.scale); }
    }
  }

  // dk, dv and the table gradient: one key per invocation, query rows in order, a barrier per row.
  var padK: array<f32, HD>;
  for (var e = 0u; e < HD; e++) { padK[e] = 0.0; }  // explicit: lavapipe keeps a loop-local var's old value
  var padV: array<f32, HD>;
  for (var e = 0u; e < HD; e++) { padV[e] = 0.0; }  // explicit: lavapipe keeps a loop-local var's old value
  for (var j0 = 0u; j0 < n; j0 += WG) {
    let j = j0 + lid.x;
    let isKey = j < n;
    let tj = token(b, win, min(j, n - 1u));
    let kj = loadK(tj.src, h);
    let vj = loadV(tj.src, h);
    var gk: array<f32, HD>;
    for (var e = 0u; e < HD; e++) { gk[e] = 0.0; }  // explicit: lavapipe keeps a loop-local var's old value
    var gv: array<f32, HD>;
    for (var e = 0u; e < HD; e++) { gv[e] = 0.0; }  // explicit: lavapipe keeps a loop-local var's old value
    for (var i = 0u; i < n; i++) {
      let ti = token(b, win, i);
      if (isKey && ti.src >= 0) {
        let qi = loadQ(ti.src, h);
        let gi = loadG(ti.src, h);
        let s = dotHD(qi, kj) * p.scale + scoreBias(ti.rel, ti.label, tj.rel, tj.label, h);
        let pij = exp(s - lseW[i]);
        let ds = pij * (dotHD(gi, vj) - deltaW[i]);
        for (var e = 0u; e < HD; e++) {
          gv[e] += pij * gi[e];
          gk[e] += ds * qi[e];
        }
        let r = relIndex(ti.rel, tj.rel);
        dtab[r] += ds;
      }
      workgroupBarrier();
    }
    if (isKey) {
      if (tj.src >= 0) {
        for (var e = 0u; e < HD; e++) {
          let at = u32(tj.src) * p.C + h * HD + e;
          dk[at] = T(gk[e] * p.scale);
          dv[at] = T(gv[e]);
        }
      } else {
        for (var e = 0u; e < HD; e++) {
          padK[e] += gk[e] * p.scale;
          padV[e] += gv[e];
        }
      }
    }
  }

  // This window's partial gradients: padded keys' dk, dv into the k and v parts of the qkv bias
  // (padded queries get none), and the table column of head h.
  let biasBase = bw * 3u * p.C + h * HD;
  for (var e = 0u; e < HD; e++) {
    let sk = workgroupSum(padK[e], lid.x);
    let sv = workgroupSum(padV[e], lid.x);
    if (lid.x == 0u) {
      dbiasPart[biasBase + e] = 0.0;
      dbiasPart[biasBase + p.C + e] = sk;
      dbiasPart[biasBase + 2u * p.C + e] = sv;
    }
  }
  workgroupBarrier();
  for (var r = lid.x; r < TABLE; r += WG) { dtablePart[(bw * TABLE + r) * p.heads + h] = dtab[r]; }
}
