// Softmax and log-softmax over the last axis, one workgroup per row, max-subtracted.
// Backward: softmax dx = y·(g − Σ g·y); log-softmax dx = g − exp(y)·Σ g.

alias T = f32;

const WG: u32 = 64u;

override LOG: bool = false;

struct Params { rows: u32, C: u32 }

@group(0) @binding(0) var<storage, read> x: array<T>;     // forward: input; backward: the forward output y
@group(0) @binding(1) var<storage, read> grad: array<T>;
@group(0) @binding(2) var<storage, read_write> out: array<T>;
@group(0) @binding(3) var<uniform> p: Params;

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

fn workgroupMax(v: f32, lane: u32) -> f32 {
  red[lane] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lane < s) { red[lane] = max(red[lane], red[lane + s]); }
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
  var m = f32(x[base]);  // a real element, so rows of huge negative values (masks) stay finite
  for (var c = lid.x; c < p.C; c += WG) { m = max(m, f32(x[base + c])); }
  m = workgroupMax(m, lid.x);
  var s = 0.0;
  for (var c = lid.x; c < p.C; c += WG) { s += exp(f32(x[base + c]) - m); }
  s = workgroupSum(s, lid.x);
  let logS = log(s);
  for (var c = lid.x; c < p.C; c += WG) {
    let z = f32(x[base + c]) - m;
    if (LOG) { out[base + c] = T(z - logS); } else { out[base + c] = T(exp(z) / s); }
  }
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
  if (row >= p.rows) { return; }
  let base = row * p.C;
  var s = 0.0;
  for (var c = lid.x; c < p.C; c += WG) {
    if (LOG) { s += f32(grad[base + c]); } else { s += f32(grad[base + c]) * f32(x[base + c]); }
  }
  s = workgroupSum(s, lid.x);
  for (var c = lid.x; c < p.C; c += WG) {
    let yv = f32(x[base + c]);
    let g = f32(grad[base + c]);
    if (LOG) { out[base + c] = T(g - exp(yv) * s); } else { out[base + c] = T(yv * (g - s)); }
  }
}
