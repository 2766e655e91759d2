// KoLeo (Sablayrolles et al.) on rows x̂ that are already L2-normalised, within groups of G rows:
//   nn(i) = argmax_{j ≠ i, same group} x̂_i·x̂_j  (ties: the lowest j),  d_i = ‖x̂_i − x̂_nn(i)‖₂,
//   rowLoss_i = −scale·log(d_i + eps)              (scale = 1/G: a mean per group)
// The distance is summed from the differences, not 2 − 2·cos, which cancels for near neighbours.
// Backward, nn fixed, with c_i = −gOut·scale / (d_i·(d_i + eps)) (0 where d_i = 0):
//   dx̂_i = c_i·(x̂_i − x̂_nn(i)) − Σ_{r: nn(r) = i} c_r·(x̂_r − x̂_i)
// gathered per element over the group in a fixed order (no scatter, no atomics). Groups are small
// (a batch per crop), so a row per invocation.

struct Params { rows: u32, D: u32, group: u32, n: u32, eps: f32, scale: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gradOut: array<f32>;
@group(0) @binding(2) var<storage, read_write> rowLoss: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;  // [rows][2]: d, nn (as f32, exact)
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 64u + lid.x;
  if (i >= p.rows) { return; }
  let g0 = (i / p.group) * p.group;
  let bi = i * p.D;
  var best = 0.0;
  var nn = i;
  for (var j = g0; j < g0 + p.group; j++) {
    if (j == i) { continue; }
    var dot = 0.0;
    for (var k = 0u; k < p.D; k++) { dot += x[bi + k] * x[j * p.D + k]; }
    if (nn == i || dot > best) { best = dot; nn = j; }
  }
  var d2 = 0.0;
  for (var k = 0u; k < p.D; k++) { let e = x[bi + k] - x[nn * p.D + k]; d2 += e * e; }
  let d = sqrt(d2);
  rowLoss[i] = -p.scale * log(d + p.eps);
  stats[2u * i] = d;
  stats[2u * i + 1u] = f32(nn);
}

fn coef(r: u32) -> f32 {
  let d = stats[2u * r];
  if (!(d > 0.0)) { return 0.0; }
  return -gradOut[0] * p.scale / (d * (d + p.eps));
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let e = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid.x;
  if (e >= p.n) { return; }
  let i = e / p.D;
  let k = e - i * p.D;
  let xi = x[e];
  var acc = coef(i) * (xi - x[u32(stats[2u * i + 1u]) * p.D + k]);
  let g0 = (i / p.group) * p.group;
  for (var r = g0; r < g0 + p.group; r++) {
    if (r != i && u32(stats[2u * r + 1u]) == i) { acc -= coef(r) * (x[r * p.D + k] - xi); }
  }
  dx[e] = acc;
}
