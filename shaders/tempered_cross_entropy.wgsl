// The student side of the DINO and iBOT losses, temperature fused and the teacher's targets read in
// place:  rowLoss_r = w_r · Σ_k t_rk · (log S − (z_rk − m)),  z = s·invTemp, m = max z, S = Σ exp(z − m)
// (= −w_r Σ_k t_rk log_softmax(z_r)_k; lse = m + log S is never formed, see cross_entropy.wgsl).
// PAIRED (DINO): student rows are views × batch, view-major, starting at view `firstView`; the
// target of view v, sample b is Σ_{g < teachers, g ≠ v} q[g·batch + b] (every teacher global crop
// but the same crop). Otherwise target row r is q[r] (iBOT: one row per masked token).
// w_r is p.weight, times weights[r] with HAS_WEIGHTS. The teacher gets no gradient:
//   ∂/∂s_rk = gOut·w_r·invTemp · (softmax(z_r)_k·Σ_k t_rk − t_rk).

alias T = f32;

const WG: u32 = 64u;

override PAIRED: bool = false;
override HAS_WEIGHTS: bool = false;

struct Params { rows: u32, C: u32, n: u32, invTemp: f32, weight: f32, batch: u32, firstView: u32, teachers: u32 }

@group(0) @binding(0) var<storage, read> s: array<T>;
@group(0) @binding(1) var<storage, read> q: array<T>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read> gradOut: array<f32>;
@group(0) @binding(4) var<storage, read_write> rowLoss: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;  // [rows][3]: m, log S, Σ_k t
@group(0) @binding(6) var<storage, read_write> ds: array<T>;
@group(0) @binding(7) var<uniform> p: Params;

var<workgroup> red: array<vec2f, WG>;

fn targetOf(row: u32, c: u32) -> f32 {
  if (!PAIRED) { return f32(q[row * p.C + c]); }
  let v = row / p.batch + p.firstView;
  let b = row % p.batch;
  var t = 0.0;
  for (var g = 0u; g < p.teachers; g++) {
    if (g != v) { t += f32(q[(g * p.batch + b) * p.C + c]); }
  }
  return t;
}

fn rowWeight(row: u32) -> f32 {
  if (HAS_WEIGHTS) { return p.weight * weights[row]; }
  return p.weight;
}

// Tree over the workgroup: with isMax the max of .x (.y ignored), else both components add.
fn reduce2(v: vec2f, lane: u32, isMax: bool) -> vec2f {
  red[lane] = v;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (lane < k) {
      if (isMax) { red[lane].x = max(red[lane].x, red[lane + k].x); } else { red[lane] += red[lane + k]; }
    }
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
  var m = f32(s[base]) * p.invTemp;
  for (var c = lid.x; c < p.C; c += WG) { m = max(m, f32(s[base + c]) * p.invTemp); }
  m = reduce2(vec2f(m, 0.0), lid.x, true).x;
  var e = 0.0;
  for (var c = lid.x; c < p.C; c += WG) { e += exp(f32(s[base + c]) * p.invTemp - m); }
  let logS = log(reduce2(vec2f(e, 0.0), lid.x, false).x);
  var acc = vec2f(0.0);  // (Σ t·(log S − (z − m)), Σ t)
  for (var c = lid.x; c < p.C; c += WG) {
    let t = targetOf(row, c);
    acc += vec2f(t * (logS - (f32(s[base + c]) * p.invTemp - m)), t);
  }
  acc = reduce2(acc, lid.x, false);
  if (lid.x == 0u) {
    rowLoss[row] = rowWeight(row) * acc.x;
    stats[3u * row] = m;
    stats[3u * row + 1u] = logS;
    stats[3u * row + 2u] = acc.y;
  }
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid.x;
  if (i >= p.n) { return; }
  let row = i / p.C;
  let c = i - row * p.C;
  let k = gradOut[0] * rowWeight(row) * p.invTemp;
  let logp = (f32(s[i]) * p.invTemp - stats[3u * row]) - stats[3u * row + 1u];
  ds[i] = T(k * (exp(logp) * stats[3u * row + 2u] - targetOf(row, c)));
}
