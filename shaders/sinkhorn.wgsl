// Sinkhorn–Knopp teacher (SwAV / DINOv2) in the log domain, on logits t [B rows, K prototypes]:
// Q_bk = exp(t_bk·invTemp + α_k + β_b). Each half-step sets one set of scalings so that
//   proto_step:   Σ_b Q_bk = 1/K  →  α_k = −log K − LSE_b(t_bk·invTemp + β_b)
//   sample_step:  Σ_k Q_bk = 1/B  →  β_b = −log B − LSE_k(t_bk·invTemp + α_k)
// which is the plain algorithm's "Q /= rowsum; Q /= K" and "Q /= colsum; Q /= B" exactly, without
// forming exp(t/τ) (no overflow, no underflow of whole rows). The initial "Q /= ΣQ" and any max
// subtraction only rescale Q before the first proto_step, which cancels them. finish: B·Q.
// Log-sum-exps are online (running max, rescaled sum), in a fixed order.

alias T = f32;

const WG: u32 = 64u;

struct Params { rows: u32, C: u32, n: u32, invTemp: f32 }

@group(0) @binding(0) var<storage, read> t: array<T>;
@group(0) @binding(1) var<storage, read_write> alpha: array<f32>;  // [K]
@group(0) @binding(2) var<storage, read_write> beta: array<f32>;   // [B]
@group(0) @binding(3) var<storage, read_write> out: array<T>;
@group(0) @binding(4) var<uniform> p: Params;

// The first proto_step runs before any sample_step: β is still zero and is not read.
override FIRST: bool = false;

var<workgroup> redM: array<f32, WG>;
var<workgroup> redS: array<f32, WG>;

@compute @workgroup_size(256)
fn proto_step(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let k = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid.x;
  if (k >= p.C) { return; }
  var m = f32(t[k]) * p.invTemp;
  if (!FIRST) { m += beta[0]; }
  var s = 1.0;
  for (var b = 1u; b < p.rows; b++) {
    var x = f32(t[b * p.C + k]) * p.invTemp;
    if (!FIRST) { x += beta[b]; }
    if (x > m) { s = s * exp(m - x) + 1.0; m = x; } else { s += exp(x - m); }
  }
  alpha[k] = -log(f32(p.C)) - (m + log(s));
}

@compute @workgroup_size(WG)
fn sample_step(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
  if (b >= p.rows) { return; }
  let base = b * p.C;
  var m = -3.0e38;  // lanes with no columns: weight 0 in the combination below
  var s = 0.0;
  for (var k = lid.x; k < p.C; k += WG) {
    let x = f32(t[base + k]) * p.invTemp + alpha[k];
    if (x > m) { s = s * exp(m - x) + 1.0; m = x; } else { s += exp(x - m); }
  }
  redM[lid.x] = m;
  redS[lid.x] = s;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h >>= 1u) {
    if (lid.x < h) {
      let m1 = redM[lid.x];
      let m2 = redM[lid.x + h];
      let mm = max(m1, m2);
      redS[lid.x] = redS[lid.x] * exp(m1 - mm) + redS[lid.x + h] * exp(m2 - mm);
      redM[lid.x] = mm;
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) { beta[b] = -log(f32(p.rows)) - (redM[0] + log(redS[0])); }
}

@compute @workgroup_size(256)
fn finish(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid.x;
  if (i >= p.n) { return; }
  let b = i / p.C;
  let k = i - b * p.C;
  out[i] = T(f32(p.rows) * exp(f32(t[i]) * p.invTemp + alpha[k] + beta[b]));
}
