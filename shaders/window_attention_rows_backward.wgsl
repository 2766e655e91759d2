// Backward of 3D shifted-window attention for CPU adapters (lavapipe, SwiftShader); the forward is
// window_attention_rows.wgsl (or window_attention.wgsl's, same lse contract), whose header and
// window_attention.wgsl's give the geometry. Recomputes p_ij = exp(s_ij − lse_i):
//   D_i = dO_i·O_i,  ds_ij = p_ij (dO_i·v_j − D_i),
//   dq_i = scale Σ_j ds_ij k_j,  dk_j = scale Σ_i ds_ij q_i,  dv_j = Σ_i p_ij dO_i,
//   dtable[idx(i, j), h] = Σ ds_ij,  padded keys' Σ dk_j, Σ dv_j → the k and v parts of qkvBias.
// Like the rows forward: no workgroup memory, no barriers, vec4 loads, every loaded vector serves
// several rows of the invocation, no integer division per score.
//
// Invocations own virtual rows: MONAI's bias index numbers the n tokens of the effective window as
// the first n tokens of the configured window (cz, cy, CX), so token t sits at virtual coordinates
// (t / (cy·CX), (t / CX) % cy, t % CX) and idx(i, j) depends only on their difference. A virtual
// row is CX consecutive tokens (the last may be partial); between query row R_i and key row R_j the
// CX·CX scores use the 2·CX − 1 consecutive table entries of offset (R_i − R_j, −(CX−1)…CX−1).
//   dqTable: one query row per invocation, keys in order: dq, D_i, and the table gradient
//     summed per (query row, key row, x offset) over a group of windows, in the invocation;
//   dkv: one key row per invocation, queries in order: dk, dv, and the row's padded keys' sums;
//   dbias, dtableSum: fixed-order sums of those partials.
// Inside a pair of rows, the row on the unrolled side sees the other row's x advance by one per
// step; the table entries it reads and the table-gradient slots it adds to then move by one slot
// per step too, so both sit in small arrays shifted each step ("conveyors") and are always
// indexed by constants (a private array indexed by a loop counter is accessed lane by lane).
// Every sum runs in a fixed order, so the gradients are bitwise reproducible.
// A padded query contributes nothing (its dO is 0, and the rows forward gives it lse = 3e38, so
// p = 0): dkv skips padded queries, and dqTable skips the keys for a query row with no real token.

alias T = f32;

const WG: u32 = 32u;
const H4: u32 = 4u;   // head dimension / 4
const CX: u32 = 7u;   // configured window's x extent: tokens per virtual row (≤ 8)
const XS: u32 = 13u;  // 2·CX − 1 x offsets between two rows
const XS4: u32 = 4u;  // ⌈XS / 4⌉ vec4s of the table-entry conveyor
const XC4: u32 = 5u;  // ⌈(3·CX − 1) / 4⌉ vec4s of the table-gradient conveyor

struct Params {
  B: u32, D: u32, H: u32, W: u32,
  C: u32, heads: u32, n: u32, nWin: u32,
  wd: u32, wh: u32, ww: u32, nwh: u32,
  nww: u32, sd: u32, sh: u32, sw: u32,
  Dp: u32, Hp: u32, Wp: u32, cz: u32,
  cy: u32, rows: u32, vrows: u32, group: u32,
  chunks: u32, scale: f32,
  // dqTable's lane i takes query row rowOrder[i] (ordered = 1; rows that are padding in more
  // windows last, so that neighbouring lanes are padding together and their SIMD group skips the
  // keys), or row i (ordered = 0). Any order gives the same sums.
  ordered: u32,
  rowOrder: array<vec4u, 16>,
}

@group(0) @binding(0) var<storage, read> q: array<vec4<T>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<T>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<T>>;
@group(0) @binding(3) var<storage, read> qkvBias: array<vec4<T>>;
@group(0) @binding(4) var<storage, read> table: array<T>;
@group(0) @binding(5) var<storage, read> o: array<vec4<T>>;
@group(0) @binding(6) var<storage, read> lse: array<f32>;            // [rows][n]
@group(0) @binding(7) var<storage, read> dOut: array<vec4<T>>;
@group(0) @binding(8) var<storage, read_write> dq: array<vec4<T>>;
@group(0) @binding(9) var<storage, read_write> dk: array<vec4<T>>;
@group(0) @binding(10) var<storage, read_write> dv: array<vec4<T>>;
@group(0) @binding(11) var<storage, read_write> delta: array<f32>;  // [rows][n]: D_i
// [chunks][heads][vrows (query)][vrows (key)][XS]: table gradient per row pair and x offset.
@group(0) @binding(12) var<storage, read_write> tpart: array<f32>;
// [rows][vrows][2][H4]: Σ dk, Σ dv over the padded keys of each key row.
@group(0) @binding(13) var<storage, read_write> padPart: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> dbiasPart: array<vec4<f32>>;  // [B·nWin][3C/4]
@group(0) @binding(15) var<storage, read_write> dtable: array<f32>;           // [table rows][heads]
@group(0) @binding(16) var<uniform> p: Params;

fn band(pos: u32, size: u32, w: u32, s: u32) -> u32 {
  if (s == 0u) { return 2u; }
  if (pos < size - w) { return 0u; }
  if (pos < size - s) { return 1u; }
  return 2u;
}

// x mod n for 0 ≤ x < 2n, without a division.
fn wrap(x: u32, n: u32) -> u32 {
  return select(x, x - n, x >= n);
}

fn queryRow(i: u32) -> u32 {
  if (p.ordered == 0u) { return i; }
  return p.rowOrder[i / 4u][i % 4u];
}

fn invocation(wid: vec3u, nwg: vec3u, lid: vec3u) -> u32 {
  return ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lid.x;
}

// Rolled-frame origin of a window.
fn origin(win: u32) -> vec3u {
  return vec3u((win / (p.nww * p.nwh)) * p.wd, ((win / p.nww) % p.nwh) * p.wh, (win % p.nww) * p.ww);
}

// Position of token t inside its (effective) window.
fn local(t: u32) -> vec3u {
  return vec3u(t / (p.wh * p.ww), (t / p.ww) % p.wh, t % p.ww);
}

struct Tok {
  src: i32,    // token index in [B, D, H, W], or −1 for padding
  label: u32,  // shift-region label
}

// Token at rolled-frame position P (< (Dp, Hp, Wp) + window).
fn tokenAt(b: u32, P: vec3u) -> Tok {
  let d = wrap(P.x + p.sd, p.Dp);
  let h = wrap(P.y + p.sh, p.Hp);
  let w = wrap(P.z + p.sw, p.Wp);
  var tok: Tok;
  tok.src = select(-1, i32(((b * p.D + d) * p.H + h) * p.W + w), d < p.D && h < p.H && w < p.W);
  tok.label = 9u * band(P.x, p.Dp, p.wd, p.sd) + 3u * band(P.y, p.Hp, p.wh, p.sh) + band(P.z, p.Wp, p.ww, p.sw);
  return tok;
}

// q, k or v (part 0, 1, 2) of a token for head h; padding reads the qkv bias.
fn load4(part: u32, src: i32, h: u32, e4: u32) -> vec4f {
  let col = h * H4 + e4;
  if (src < 0) { return vec4f(qkvBias[part * (p.C / 4u) + col]); }
  let at = u32(src) * (p.C / 4u) + col;
  if (part == 0u) { return vec4f(q[at]); }
  if (part == 1u) { return vec4f(k[at]); }
  return vec4f(v[at]);
}

// dOut of a token; zero for padding (its output is dropped).
fn loadG(src: i32, h: u32, e4: u32) -> vec4f {
  if (src < 0) { return vec4f(0.0); }
  return vec4f(dOut[u32(src) * (p.C / 4u) + h * H4 + e4]);
}

// First of the XS table rows (x offsets −(CX−1)…CX−1) of virtual row offset (dz, dy).
fn tableRow(dz: i32, dy: i32) -> u32 {
  return u32((dz + i32(p.cz) - 1) * (2 * i32(p.cy) - 1) + dy + i32(p.cy) - 1) * XS;
}

// Shifts a conveyor by one slot towards higher slots (0 enters slot 0).
fn shiftUp(a: ptr<function, array<vec4f, XC4>>) {
  var carry = 0.0;
  for (var g = 0u; g < XC4; g++) {
    let w = (*a)[g].w;
    (*a)[g] = vec4f(carry, (*a)[g].xyz);
    carry = w;
  }
}

// The XS table entries of x offsets −(CX−1)…CX−1 from table row trow (padded with zeros).
fn loadBias(trow: u32, h: u32) -> array<vec4f, XS4> {
  var b: array<vec4f, XS4>;
  for (var g = 0u; g < XS4; g++) {
    var c = vec4f(0.0);
    for (var e = 0u; e < 4u; e++) {
      let s = 4u * g + e;
      c[e] = select(0.0, f32(table[(trow + min(s, XS - 1u)) * p.heads + h]), s < XS);
    }
    b[g] = c;
  }
  return b;
}

// ---------------------------------------------------------------------------------------------
// dq, D and the table-gradient partials. Invocation (chunk, head, query row); it walks the
// windows chunk·group … chunk·group + group − 1 (clamped; the surplus is computed but not stored).
// ---------------------------------------------------------------------------------------------

struct Query {
  q: array<vec4f, H4>,   // times scale
  g: array<vec4f, H4>,   // dO (zero for padding and missing tokens)
  dq: array<vec4f, H4>,
  label: u32,
  ok: bool,              // token exists (the last row may be partial)
  lse: f32,
  delta: f32,
}

struct Key {
  k: array<vec4f, H4>,
  v: array<vec4f, H4>,
  label: u32,
  ok: bool,
}

// Score of query x of the row with the current key. Called with constant x (an unrolled loop:
// lavapipe does not unroll a loop body this large), so every array index is a constant.
fn dqPair(x: u32, qs: ptr<function, array<Query, CX>>, key: ptr<function, Key>, bias: ptr<function, array<vec4f, XS4>>, acc: ptr<function, array<vec4f, XC4>>) {
  if (x >= CX) { return; }
  let slot = x + CX - 1u;
  var s = (*bias)[slot / 4u][slot % 4u];
  var dp = 0.0;
  for (var e4 = 0u; e4 < H4; e4++) {
    s += dot((*qs)[x].q[e4], (*key).k[e4]);
    dp += dot((*qs)[x].g[e4], (*key).v[e4]);
  }
  if ((*qs)[x].label != (*key).label) { s -= 100.0; }
  let pij = select(0.0, exp(s - (*qs)[x].lse), (*key).ok && (*qs)[x].ok);
  let ds = pij * (dp - (*qs)[x].delta);
  for (var e4 = 0u; e4 < H4; e4++) { (*qs)[x].dq[e4] += ds * (*key).k[e4]; }
  (*acc)[slot / 4u][slot % 4u] += ds;
}

@compute @workgroup_size(WG)
fn dqTable(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let lane = invocation(wid, nwg, lid);
  let r = queryRow(lane % p.vrows);
  let h = (lane / p.vrows) % p.heads;
  let chunk = lane / (p.vrows * p.heads);
  if (chunk >= p.chunks) { return; }
  let rz = i32(r / p.cy);
  let ry = i32(r % p.cy);
  let nBW = p.B * p.nWin;

  var eI: array<vec3u, CX>;
  for (var x = 0u; x < CX; x++) { eI[x] = local(min(r * CX + x, p.n - 1u)); }

  for (var g = 0u; g < p.group; g++) {
    let live = chunk * p.group + g < nBW;
    let bw = min(chunk * p.group + g, nBW - 1u);
    let row = bw * p.heads + h;
    let b = bw / p.nWin;
    let o0 = origin(bw % p.nWin);

    var qs: array<Query, CX>;
    var srcI: array<i32, CX>;
    for (var x = 0u; x < CX; x++) {
      let t = r * CX + x;
      let tok = tokenAt(b, o0 + eI[x]);
      // A row's missing tokens (past n) act as padding, their scores masked.
      srcI[x] = select(-1, tok.src, t < p.n);
      qs[x].ok = t < p.n;
      qs[x].label = tok.label;
      var delta = 0.0;
      for (var e4 = 0u; e4 < H4; e4++) {
        qs[x].q[e4] = load4(0u, srcI[x], h, e4) * p.scale;
        qs[x].g[e4] = loadG(srcI[x], h, e4);
        qs[x].dq[e4] = vec4f(0.0);  // explicit: lavapipe keeps a loop-local var's old value
        if (srcI[x] >= 0) { delta += dot(qs[x].g[e4], vec4f(o[u32(srcI[x]) * (p.C / 4u) + h * H4 + e4])); }
      }
      qs[x].delta = delta;
      qs[x].lse = lse[row * p.n + min(t, p.n - 1u)];
    }

    var rowLive = false;
    for (var x = 0u; x < CX; x++) { rowLive = rowLive || srcI[x] >= 0; }

    // Keys in token order; e is key t's position in the window, (jz, jy) its virtual row.
    var t = 0u;
    var e = vec3u(0u);
    var jz = 0;
    var jy = 0;
    for (var rj = 0u; rj < p.vrows; rj++) {
      // During key xj, slot s of bias (table entry) and acc (its gradient) is x offset
      // s − xj − (CX−1), so query x always uses slot x + CX − 1.
      var bias = loadBias(tableRow(rz - jz, ry - jy), h);
      var acc: array<vec4f, XC4>;
      for (var c = 0u; c < XC4; c++) { acc[c] = vec4f(0.0); }
      for (var xj = 0u; xj < CX; xj++) {
        if (rowLive) {
          let tok = tokenAt(b, o0 + e);
          var key: Key;
          key.ok = t < p.n;
          key.label = tok.label;
          for (var e4 = 0u; e4 < H4; e4++) {
            key.k[e4] = load4(1u, tok.src, h, e4);
            key.v[e4] = load4(2u, tok.src, h, e4);
          }
          dqPair(0u, &qs, &key, &bias, &acc);
          dqPair(1u, &qs, &key, &bias, &acc);
          dqPair(2u, &qs, &key, &bias, &acc);
          dqPair(3u, &qs, &key, &bias, &acc);
          dqPair(4u, &qs, &key, &bias, &acc);
          dqPair(5u, &qs, &key, &bias, &acc);
          dqPair(6u, &qs, &key, &bias, &acc);
          dqPair(7u, &qs, &key, &bias, &acc);
        }
        shiftUp(&acc);
        var carry = 0.0;
        for (var c = 0u; c < XS4; c++) {
          let w = bias[c].w;
          bias[c] = vec4f(carry, bias[c].xyz);
          carry = w;
        }
        t += 1u;
        e.z += 1u;
        if (e.z == p.ww) { e.z = 0u; e.y += 1u; }
        if (e.y == p.wh) { e.y = 0u; e.x += 1u; }
      }
      // After CX shifts, x offset l − (CX−1) sits in slot l + CX.
      if (live) {
        let at = (((chunk * p.heads + h) * p.vrows + r) * p.vrows + rj) * XS;
        for (var l = 0u; l < XS; l++) {
          let slot = l + CX;
          tpart[at + l] = select(tpart[at + l], 0.0, g == 0u) + acc[slot / 4u][slot % 4u];
        }
      }
      jy += 1;
      if (jy == i32(p.cy)) { jy = 0; jz += 1; }
    }

    if (live) {
      for (var x = 0u; x < CX; x++) {
        if (qs[x].ok) {
          delta[row * p.n + r * CX + x] = qs[x].delta;
          if (srcI[x] >= 0) {
            for (var e4 = 0u; e4 < H4; e4++) { dq[u32(srcI[x]) * (p.C / 4u) + h * H4 + e4] = vec4<T>(qs[x].dq[e4] * p.scale); }
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// dk, dv. Invocation (window, head, key row); queries in token order.
// ---------------------------------------------------------------------------------------------

struct KeyAcc {
  k: array<vec4f, H4>,
  v: array<vec4f, H4>,
  dk: array<vec4f, H4>,
  dv: array<vec4f, H4>,
  label: u32,
  ok: bool,
}

struct QueryIn {
  q: array<vec4f, H4>,   // times scale
  g: array<vec4f, H4>,
  label: u32,
  ok: bool,
  lse: f32,
  delta: f32,
}

// Score of the current query with key x of the row; constant x as in dqPair.
fn kvPair(x: u32, ks: ptr<function, array<KeyAcc, CX>>, qi: ptr<function, QueryIn>, bias: ptr<function, array<vec4f, XS4>>) {
  if (x >= CX) { return; }
  let slot = CX - 1u - x;
  var s = (*bias)[slot / 4u][slot % 4u];
  var dp = 0.0;
  for (var e4 = 0u; e4 < H4; e4++) {
    s += dot((*qi).q[e4], (*ks)[x].k[e4]);
    dp += dot((*qi).g[e4], (*ks)[x].v[e4]);
  }
  if ((*ks)[x].label != (*qi).label) { s -= 100.0; }
  let pij = select(0.0, exp(s - (*qi).lse), (*qi).ok && (*ks)[x].ok);
  let ds = pij * (dp - (*qi).delta);
  for (var e4 = 0u; e4 < H4; e4++) {
    (*ks)[x].dv[e4] += pij * (*qi).g[e4];
    (*ks)[x].dk[e4] += ds * (*qi).q[e4];
  }
}

@compute @workgroup_size(WG)
fn dkv(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let lane = invocation(wid, nwg, lid);
  let r = lane % p.vrows;
  let h = (lane / p.vrows) % p.heads;
  let bw = lane / (p.vrows * p.heads);
  if (bw >= p.B * p.nWin) { return; }
  let row = bw * p.heads + h;
  let b = bw / p.nWin;
  let o0 = origin(bw % p.nWin);
  let rz = i32(r / p.cy);
  let ry = i32(r % p.cy);

  var ks: array<KeyAcc, CX>;
  var srcJ: array<i32, CX>;
  for (var x = 0u; x < CX; x++) {
    let t = r * CX + x;
    let tok = tokenAt(b, o0 + local(min(t, p.n - 1u)));
    srcJ[x] = tok.src;
    ks[x].ok = t < p.n;
    ks[x].label = tok.label;
    for (var e4 = 0u; e4 < H4; e4++) {
      ks[x].k[e4] = load4(1u, tok.src, h, e4);
      ks[x].v[e4] = load4(2u, tok.src, h, e4);
      ks[x].dk[e4] = vec4f(0.0);  // explicit: lavapipe keeps a loop-local var's old value
      ks[x].dv[e4] = vec4f(0.0);
    }
  }

  var t = 0u;
  var e = vec3u(0u);
  var iz = 0;
  var iy = 0;
  for (var ri = 0u; ri < p.vrows; ri++) {
    // During query xi, bias[s] is the table entry of x offset s + xi − (CX−1), so key x always
    // uses slot CX − 1 − x.
    var bias = loadBias(tableRow(iz - rz, iy - ry), h);
    for (var xi = 0u; xi < CX; xi++) {
      let tok = tokenAt(b, o0 + e);
      // Lanes of one window agree on which queries are padded, so the skip is real work saved.
      if (t < p.n && tok.src >= 0) {
        var qi: QueryIn;
        qi.ok = true;
        qi.label = tok.label;
        for (var e4 = 0u; e4 < H4; e4++) {
          qi.q[e4] = load4(0u, tok.src, h, e4) * p.scale;
          qi.g[e4] = loadG(tok.src, h, e4);
        }
        let at = row * p.n + t;
        qi.lse = lse[at];
        qi.delta = delta[at];
        kvPair(0u, &ks, &qi, &bias);
        kvPair(1u, &ks, &qi, &bias);
        kvPair(2u, &ks, &qi, &bias);
        kvPair(3u, &ks, &qi, &bias);
        kvPair(4u, &ks, &qi, &bias);
        kvPair(5u, &ks, &qi, &bias);
        kvPair(6u, &ks, &qi, &bias);
        kvPair(7u, &ks, &qi, &bias);
      }
      for (var c = 0u; c < XS4; c++) { bias[c] = vec4f(bias[c].yzw, bias[min(c + 1u, XS4 - 1u)].x); }
      t += 1u;
      e.z += 1u;
      if (e.z == p.ww) { e.z = 0u; e.y += 1u; }
      if (e.y == p.wh) { e.y = 0u; e.x += 1u; }
    }
    iy += 1;
    if (iy == i32(p.cy)) { iy = 0; iz += 1; }
  }

  // Padded keys' gradients go to the qkv bias; a missing token's (past n) are zero.
  var padK: array<vec4f, H4>;
  var padV: array<vec4f, H4>;
  for (var e4 = 0u; e4 < H4; e4++) {
    padK[e4] = vec4f(0.0);
    padV[e4] = vec4f(0.0);
  }
  for (var x = 0u; x < CX; x++) {
    for (var e4 = 0u; e4 < H4; e4++) {
      if (srcJ[x] >= 0) {
        let at = u32(srcJ[x]) * (p.C / 4u) + h * H4 + e4;
        if (ks[x].ok) {
          dk[at] = vec4<T>(ks[x].dk[e4]);
          dv[at] = vec4<T>(ks[x].dv[e4]);
        }
      } else {
        padK[e4] += ks[x].dk[e4];
        padV[e4] += ks[x].dv[e4];
      }
    }
  }
  let at = (row * p.vrows + r) * 2u * H4;
  for (var e4 = 0u; e4 < H4; e4++) {
    padPart[at + e4] = padK[e4];
    padPart[at + H4 + e4] = padV[e4];
  }
}

// ---------------------------------------------------------------------------------------------
// qkv-bias gradient per (window, head): the padded keys' sums of its key rows, in order. Padded
// queries get none (their dO is zero).
// ---------------------------------------------------------------------------------------------

@compute @workgroup_size(WG)
fn dbias(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = invocation(wid, nwg, lid);
  if (row >= p.rows) { return; }
  let h = row % p.heads;
  let bw = row / p.heads;
  let C4 = p.C / 4u;
  for (var e4 = 0u; e4 < H4; e4++) {
    var sk = vec4f(0.0);
    var sv = vec4f(0.0);
    for (var r = 0u; r < p.vrows; r++) {
      let at = (row * p.vrows + r) * 2u * H4 + e4;
      sk += padPart[at];
      sv += padPart[at + H4];
    }
    let o = bw * 3u * C4 + h * H4 + e4;
    dbiasPart[o] = vec4f(0.0);
    dbiasPart[o + C4] = sk;
    dbiasPart[o + 2u * C4] = sv;
  }
}

// ---------------------------------------------------------------------------------------------
// Table gradient: entry (offset, head) sums its row pairs' partials, chunks then key rows in order.
// ---------------------------------------------------------------------------------------------

@compute @workgroup_size(WG)
fn dtableSum(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let lane = invocation(wid, nwg, lid);
  let ny = 2u * p.cy - 1u;
  if (lane >= (2u * p.cz - 1u) * ny * XS * p.heads) { return; }
  let h = lane % p.heads;
  let rel = lane / p.heads;
  let l = rel % XS;
  let dy = i32((rel / XS) % ny) - i32(p.cy) + 1;
  let dz = i32(rel / (XS * ny)) - i32(p.cz) + 1;
  var sum = 0.0;
  for (var c = 0u; c < p.chunks; c++) {
    let base = (c * p.heads + h) * p.vrows;
    for (var jz = 0; jz < i32(p.cz); jz++) {
      for (var jy = 0; jy < i32(p.cy); jy++) {
        let iz = jz + dz;
        let iy = jy + dy;
        let rj = u32(jz) * p.cy + u32(jy);
        let ri = u32(iz) * p.cy + u32(iy);
        if (iz >= 0 && iz < i32(p.cz) && iy >= 0 && iy < i32(p.cy) && ri < p.vrows && rj < p.vrows) {
          sum += tpart[((base + ri) * p.vrows + rj) * XS + l];
        }
      }
    }
  }
  dtable[lane] = sum;
}
