// Row-wise L2 normalisation over the last axis, y = x / max(‖x‖₂, eps) (F.normalize), and its
// backward. With n = ‖x‖ > eps:  dx = (g − y·(y·g)) / n;  clamped (n ≤ eps) the divisor is the
// constant eps:  dx = g / eps.  The forward keeps ‖x‖ per row for the backward.
// Two layouts, both summing in a fixed order: a workgroup per row (GPUs) and a row per invocation
// (CPU adapters, where a barrier is a pass over every lane and costs more than a short row).

alias T = f32;

const WG: u32 = 64u;

struct Params { rows: u32, C: u32, eps: f32 }

@group(0) @binding(0) var<storage, read> x: array<T>;      // forward: input; backward: the output y
@group(0) @binding(1) var<storage, read> grad: array<T>;
@group(0) @binding(2) var<storage, read_write> out: array<T>;
@group(0) @binding(3) var<storage, read_write> norms: array<f32>;  // [rows]: ‖x‖ (unclamped)
@group(0) @binding(4) var<uniform> p: Params;

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
  for (var c = lid.x; c < p.C; c += WG) { let v = f32(x[base + c]); s += v * v; }
  let n = sqrt(workgroupSum(s, lid.x));
  let inv = 1.0 / max(n, p.eps);
  for (var c = lid.x; c < p.C; c += WG) { out[base + c] = T(f32(x[base + c]) * inv); }
  if (lid.x == 0u) { norms[row] = n; }
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
  if (row >= p.rows) { return; }
  let base = row * p.C;
  let n = norms[row];
  let clamped = !(n > p.eps);
  var s = 0.0;
  for (var c = lid.x; c < p.C; c += WG) { s += f32(x[base + c]) * f32(grad[base + c]); }
  let yg = select(workgroupSum(s, lid.x), 0.0, clamped);  // the sum is uniform work: always reduce
  let inv = 1.0 / max(n, p.eps);
  for (var c = lid.x; c < p.C; c += WG) {
    out[base + c] = T((f32(grad[base + c]) - f32(x[base + c]) * yg) * inv);
  }
}

@compute @workgroup_size(WG)
fn forward_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lid.x;
  if (row >= p.rows) { return; }
  let base = row * p.C;
  var s = 0.0;
  for (var c = 0u; c < p.C; c++) { let v = f32(x[base + c]); s += v * v; }
  let n = sqrt(s);
  let inv = 1.0 / max(n, p.eps);
  for (var c = 0u; c < p.C; c++) { out[base + c] = T(f32(x[base + c]) * inv); }
  norms[row] = n;
}

@compute @workgroup_size(WG)
fn backward_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lid.x;
  if (row >= p.rows) { return; }
  let base = row * p.C;
  let n = norms[row];
  var yg = 0.0;
  if (n > p.eps) {
    for (var c = 0u; c < p.C; c++) { yg += f32(x[base + c]) * f32(grad[base + c]); }
  }
  let inv = 1.0 / max(n, p.eps);
  for (var c = 0u; c < p.C; c++) { out[base + c] = T((f32(grad[base + c]) - f32(x[base + c]) * yg) * inv); }
}
