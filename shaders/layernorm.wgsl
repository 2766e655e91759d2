// LayerNorm over the last axis (C channels), biased variance, as PyTorch. One workgroup per row;
// mean and variance are two passes over the row (no E[x²]−E[x]² cancellation). The row's mean and
// 1/σ are kept for the backward pass. Parameter gradients are summed per chunk of rows, then the
// chunks are summed by the reduce kernel, in a fixed order either way.
// The *_rows entries take one row per invocation instead, without workgroup memory or barriers: on
// a CPU adapter a workgroup runs as one loop over its lanes and every barrier is a pass over all of
// them, which costs more than a short row.

alias T = f32;

const WG: u32 = 64u;
const ROWS_PER_CHUNK: u32 = 64u;

override AFFINE: bool = true;

// statsRow0: where this dispatch's rows start in `stats` (rows of x bound in pieces; stats is bound whole).
struct Params { rows: u32, C: u32, eps: f32, chunks: u32, statsRow0: u32 }

@group(0) @binding(0) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read> weight: array<T>;
@group(0) @binding(2) var<storage, read> bias: array<T>;
@group(0) @binding(3) var<storage, read> grad: array<T>;
@group(0) @binding(4) var<storage, read_write> y: array<T>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;   // [rows][2]: mean, 1/σ
@group(0) @binding(6) var<storage, read_write> dweight: array<f32>; // [chunks][C] partial sums
@group(0) @binding(7) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;

var<workgroup> red: array<f32, WG>;

fn workgroupSum(v: f32, lane: u32) -> f32 {
  red[lane] = v;
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
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
  if (row >= p.rows) { return; }
  let base = row * p.C;
  var s = 0.0;
  for (var c = lid.x; c < p.C; c += WG) { s += f32(x[base + c]); }
  let mean = workgroupSum(s, lid.x) / f32(p.C);
  var v = 0.0;
  for (var c = lid.x; c < p.C; c += WG) { let d = f32(x[base + c]) - mean; v += d * d; }
  let rstd = inverseSqrt(workgroupSum(v, lid.x) / f32(p.C) + p.eps);
  for (var c = lid.x; c < p.C; c += WG) {
    var o = (f32(x[base + c]) - mean) * rstd;
    if (AFFINE) { o = o * f32(weight[c]) + f32(bias[c]); }
    y[base + c] = T(o);
  }
  if (lid.x == 0u) { stats[2u * (p.statsRow0 + row)] = mean; stats[2u * (p.statsRow0 + row) + 1u] = rstd; }
}

@compute @workgroup_size(WG)
fn forward_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lid.x;
  if (row >= p.rows) { return; }
  let base = row * p.C;
  var s = 0.0;
  for (var c = 0u; c < p.C; c++) { s += f32(x[base + c]); }
  let mean = s / f32(p.C);
  var v = 0.0;
  for (var c = 0u; c < p.C; c++) { let d = f32(x[base + c]) - mean; v += d * d; }
  let rstd = inverseSqrt(v / f32(p.C) + p.eps);
  for (var c = 0u; c < p.C; c++) {
    var o = (f32(x[base + c]) - mean) * rstd;
    if (AFFINE) { o = o * f32(weight[c]) + f32(bias[c]); }
    y[base + c] = T(o);
  }
  stats[2u * (p.statsRow0 + row)] = mean;
  stats[2u * (p.statsRow0 + row) + 1u] = rstd;
}

@compute @workgroup_size(WG)
fn backward_input_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lid.x;
  if (row >= p.rows) { return; }
  let base = row * p.C;
  let mean = stats[2u * (p.statsRow0 + row)];
  let rstd = stats[2u * (p.statsRow0 + row) + 1u];
  var s1 = 0.0;
  var s2 = 0.0;
  for (var c = 0u; c < p.C; c++) {
    var gw = f32(grad[base + c]);
    if (AFFINE) { gw *= f32(weight[c]); }
    s1 += gw;
    s2 += gw * (f32(x[base + c]) - mean) * rstd;
  }
  let m1 = s1 / f32(p.C);
  let m2 = s2 / f32(p.C);
  for (var c = 0u; c < p.C; c++) {
    var gw = f32(grad[base + c]);
    if (AFFINE) { gw *= f32(weight[c]); }
    let xhat = (f32(x[base + c]) - mean) * rstd;
    y[base + c] = T(rstd * (gw - m1 - xhat * m2));
  }
}

// dx = (1/σ)·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = g·w
@compute @workgroup_size(WG)
fn backward_input(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
  if (row >= p.rows) { return; }
  let base = row * p.C;
  let mean = stats[2u * (p.statsRow0 + row)];
  let rstd = stats[2u * (p.statsRow0 + row) + 1u];
  var s1 = 0.0;
  var s2 = 0.0;
  for (var c = lid.x; c < p.C; c += WG) {
    var gw = f32(grad[base + c]);
    if (AFFINE) { gw *= f32(weight[c]); }
    s1 += gw;
    s2 += gw * (f32(x[base + c]) - mean) * rstd;
  }
  let m1 = workgroupSum(s1, lid.x) / f32(p.C);
  let m2 = workgroupSum(s2, lid.x) / f32(p.C);
  for (var c = lid.x; c < p.C; c += WG) {
    var gw = f32(grad[base + c]);
    if (AFFINE) { gw *= f32(weight[c]); }
    let xhat = (f32(x[base + c]) - mean) * rstd;
    y[base + c] = T(rstd * (gw - m1 - xhat * m2));
  }
}

// Partial dw = Σ g·x̂ and db = Σ g over one chunk of rows, one invocation per channel.
@compute @workgroup_size(WG)
fn backward_params(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let c = wid.x * WG + lid.x;
  let chunk = wid.z * nwg.y + wid.y;  // chunks run over y·z: more than 65535 of them for tall inputs
  if (c >= p.C || chunk >= p.chunks) { return; }
  let r0 = chunk * ROWS_PER_CHUNK;
  let r1 = min(r0 + ROWS_PER_CHUNK, p.rows);
  var dw = 0.0;
  var db = 0.0;
  for (var r = r0; r < r1; r++) {
    let g = f32(grad[r * p.C + c]);
    dw += g * (f32(x[r * p.C + c]) - stats[2u * r]) * stats[2u * r + 1u];
    db += g;
  }
  dweight[chunk * p.C + c] = dw;
  dbias[chunk * p.C + c] = db;
}
