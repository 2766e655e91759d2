// AdamW (decoupled weight decay), one invocation per parameter element, all state in f32:
//   g ← g·gradScale·c;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
//   p ← p − lr·( m/(1−β1ᵗ) / (√(v/(1−β2ᵗ)) + ε) + wd·p )
// gradScale folds in gradient clipping and loss-scale removal without an extra pass. With
// useControl, c = control[scaleIndex] (a multiplier computed on the GPU, e.g. by grad_norm.wgsl)
// and the step is skipped entirely when control[okIndex] is 0 (a gradient was not finite).

const WG: u32 = 256u;

struct Params {
  n: u32,
  lr: f32, beta1: f32, beta2: f32, oneMinusBeta1: f32, oneMinusBeta2: f32, eps: f32, weightDecay: f32,
  biasCorrection1: f32, biasCorrection2: f32,  // 1 − β1ᵗ, 1 − β2ᵗ
  gradScale: f32,
  useControl: u32, okIndex: u32, scaleIndex: u32,
}

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<storage, read> control: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lid.x;
  if (i >= p.n) { return; }
  var scale = p.gradScale;
  if (p.useControl != 0u) {
    if (control[p.okIndex] == 0.0) { return; }
    scale *= control[p.scaleIndex];
  }
  let g = grad[i] * scale;
  let mi = p.beta1 * m[i] + p.oneMinusBeta1 * g;
  let vi = p.beta2 * v[i] + p.oneMinusBeta2 * g * g;
  m[i] = mi;
  v[i] = vi;
  let step = (mi / p.biasCorrection1) / (sqrt(vi / p.biasCorrection2) + p.eps);
  param[i] = param[i] - p.lr * (step + p.weightDecay * param[i]);
}
