// Epps–Pulley statistic per random slice, on projections x [N samples, M slices]:
//   t_j = j·dt (j < J, dt = tMax/(J−1)),  w_j = (2·dt, dt at both ends)·exp(−t_j²/2)
//   C_j = mean_n cos(t_j·x_n) − exp(−t_j²/2),  S_j = mean_n sin(t_j·x_n)
//   T = N·Σ_j w_j·(C_j² + S_j²)          (stat[m] = T·scale; scale = 1/M makes their sum the mean)
// Backward, per element:
//   ∂T/∂x_n = Σ_j 2·w_j·t_j·(S_j·cos(t_j·x_n) − C_j·sin(t_j·x_n))
// A slice per invocation (adjacent lanes read adjacent slices of a row), samples summed in order.

const MAX_KNOTS: u32 = 64u;

struct Params { N: u32, M: u32, n: u32, knots: u32, dt: f32, scale: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gradOut: array<f32>;
@group(0) @binding(2) var<storage, read_write> stat: array<f32>;  // [M]
@group(0) @binding(3) var<storage, read_write> cs: array<f32>;    // [M][knots][2]: C_j, S_j
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

// Arguments reduced to [−π, π] first (Cody–Waite, 2π = 6.28125 + 1.9353072e-3): WGSL bounds the error
// of sin and cos only there, and GPUs' fast versions lose accuracy outside.
fn reduceAngle(a: f32) -> f32 {
  let k = round(a * 0.15915494);
  return (a - k * 6.28125) - k * 1.9353072e-3;
}

fn knotWeight(j: u32) -> f32 {
  let t = f32(j) * p.dt;
  let ends = j == 0u || j + 1u == p.knots;
  return select(2.0 * p.dt, p.dt, ends) * exp(-0.5 * t * t);
}

@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let m = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 64u + lid.x;
  if (m >= p.M) { return; }
  var c: array<f32, MAX_KNOTS>;
  var s: array<f32, MAX_KNOTS>;
  for (var j = 0u; j < p.knots; j++) { c[j] = 0.0; s[j] = 0.0; }
  for (var r = 0u; r < p.N; r++) {
    let v = x[r * p.M + m];
    for (var j = 0u; j < p.knots; j++) {
      let a = reduceAngle(f32(j) * p.dt * v);
      c[j] += cos(a);
      s[j] += sin(a);
    }
  }
  let invN = 1.0 / f32(p.N);
  var total = 0.0;
  for (var j = 0u; j < p.knots; j++) {
    let t = f32(j) * p.dt;
    let cj = c[j] * invN - exp(-0.5 * t * t);
    let sj = s[j] * invN;
    total += knotWeight(j) * (cj * cj + sj * sj);
    cs[(m * p.knots + j) * 2u] = cj;
    cs[(m * p.knots + j) * 2u + 1u] = sj;
  }
  stat[m] = p.scale * f32(p.N) * total;
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let e = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid.x;
  if (e >= p.n) { return; }
  let m = e % p.M;
  let v = x[e];
  var acc = 0.0;
  for (var j = 1u; j < p.knots; j++) {  // t_0 = 0 contributes nothing
    let t = f32(j) * p.dt;
    let a = reduceAngle(t * v);
    let base = (m * p.knots + j) * 2u;
    acc += 2.0 * knotWeight(j) * t * (cs[base + 1u] * cos(a) - cs[base] * sin(a));
  }
  dx[e] = gradOut[0] * p.scale * acc;
}
