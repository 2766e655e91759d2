// AdamW (decoupled weight decay), one invocation per parameter element, all state in f32:
//   g ← g·gradScale;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
//   p ← p − lr·( m/(1−β1ᵗ) / (√(v/(1−β2ᵗ)) + ε) + wd·p )
// gradScale folds in gradient clipping and loss-scale removal without an extra pass.

const WG: u32 = 256u;

struct Params {
  n: u32,
  lr: f32, beta1: f32, beta2: f32, eps: f32, weightDecay: f32,
  biasCorrection1: f32, biasCorrection2: f32,  // 1 − β1ᵗ, 1 − β2ᵗ
  gradScale: f32,
}

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lid.x;
  if (i >= p.n) { return; }
  let g = grad[i] * p.gradScale;
  let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
  let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  let step = (mi / p.biasCorrection1) / (sqrt(vi / p.biasCorrection2) + p.eps);
  param[i] = param[i] - p.lr * (step + p.weightDecay * param[i]);
}
