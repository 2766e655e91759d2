// Element-by-element kernels on contiguous tensors of n elements: affine scaling, exact GELU and
// LeakyReLU with their derivatives, in-place accumulation, fill. Elementwise work is memory-bound, so one invocation per
// element; the grid is 2-D because one dimension holds at most 65535 workgroups.

alias T = f32;

const WG: u32 = 256u;

struct Params { n: u32, alpha: f32, beta: f32 }

@group(0) @binding(0) var<storage, read> a: array<T>;
@group(0) @binding(1) var<storage, read> b: array<T>;
@group(0) @binding(2) var<storage, read_write> out: array<T>;
@group(0) @binding(3) var<uniform> p: Params;

fn index(wid: vec3u, nwg: vec3u, lid: vec3u) -> u32 {
  return ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lid.x;
}

// erf in f32 (WGSL has none). |x| < 0.5: Taylor series to x¹¹ (relative error < 3e-8).
// Otherwise 1 − erfc, with erfc from the Chebyshev-fitted exponential form of Numerical Recipes'
// erfcc (fractional error < 1.2e-7), which keeps the tails accurate.
fn erf32(x: f32) -> f32 {
  let ax = abs(x);
  if (ax < 0.5) {
    let x2 = x * x;
    // Taylor series of erf about 0, enough terms for f32 on |x| < 0.5.
    let s = 1.0 + x2 * (-1.0 / 3.0 + x2 * (1.0 / 10.0 + x2 * (-1.0 / 42.0 + x2 * (1.0 / 216.0 + x2 * (-1.0 / 1320.0)))));
    return 1.1283791670955126 * x * s;
  }
  // erfc(ax) = exp(-ax²) · P(t), t = 1/(1 + 0.5·ax)  (Numerical Recipes' erfcc, rel. err < 1.2e-7)
  let t = 1.0 / (1.0 + 0.5 * ax);
  let poly = -ax * ax - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  let erfc = t * exp(poly);
  return sign(x) * (1.0 - erfc);
}

const INV_SQRT2: f32 = 0.7071067811865476;
const INV_SQRT_2PI: f32 = 0.3989422804014327;

// out = alpha·a + beta
@compute @workgroup_size(WG)
fn scale_shift(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = index(wid, nwg, lid);
  if (i >= p.n) { return; }
  out[i] = T(p.alpha * f32(a[i]) + p.beta);
}

// out = x·Φ(x), Φ the standard normal CDF (exact GELU, as PyTorch's default)
@compute @workgroup_size(WG)
fn gelu(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = index(wid, nwg, lid);
  if (i >= p.n) { return; }
  let x = f32(a[i]);
  out[i] = T(0.5 * x * (1.0 + erf32(x * INV_SQRT2)));
}

// out = g · (Φ(x) + x·φ(x)), with a = x and b = g
@compute @workgroup_size(WG)
fn gelu_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = index(wid, nwg, lid);
  if (i >= p.n) { return; }
  let x = f32(a[i]);
  let cdf = 0.5 * (1.0 + erf32(x * INV_SQRT2));
  let pdf = INV_SQRT_2PI * exp(-0.5 * x * x);
  out[i] = T(f32(b[i]) * (cdf + x * pdf));
}

// out += alpha·a (gradient accumulation)
@compute @workgroup_size(WG)
fn accumulate(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = index(wid, nwg, lid);
  if (i >= p.n) { return; }
  out[i] = T(f32(out[i]) + p.alpha * f32(a[i]));
}

// out = alpha
@compute @workgroup_size(WG)
fn fill(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = index(wid, nwg, lid);
  if (i >= p.n) { return; }
  out[i] = T(p.alpha);
}

// out = x for x ≥ 0, alpha·x otherwise (LeakyReLU with negative slope alpha)
@compute @workgroup_size(WG)
fn leaky_relu(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = index(wid, nwg, lid);
  if (i >= p.n) { return; }
  let x = f32(a[i]);
  out[i] = T(select(p.alpha * x, x, x >= 0.0));
}

// out = g for x ≥ 0, alpha·g otherwise, with a = x and b = g
@compute @workgroup_size(WG)
fn leaky_relu_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = index(wid, nwg, lid);
  if (i >= p.n) { return; }
  let g = f32(b[i]);
  out[i] = T(select(p.alpha * g, g, f32(a[i]) >= 0.0));
}
