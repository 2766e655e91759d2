// Gradient L2 norms for clipping, deterministic (every sum in a fixed order, no atomics), in three
// passes so the result is bitwise the same on every run:
//   chunk_sums   (one dispatch per gradient): each workgroup squares and sums CHUNK elements into
//                one partial, and ORs a non-finite flag (tested on the exponent bits, since WGSL
//                may assume no NaN/Inf in float arithmetic);
//   tensor_sums  (one workgroup per tensor): sums that tensor's partials;
//   finish       (one workgroup): global norm, per-tensor norms, finiteness, clip multipliers.
// `ctl` layout (f32): [0] global norm, [1] 1 if every element and the norm are finite else 0,
// [2] global clip coefficient, [3] unused, then per tensor t (T tensors):
// [4+t] multiplier the optimizer applies (clip coefficient · invScale, 0 when not finite),
// [4+T+t] the tensor's norm, [4+2T+t] 1 if the tensor has a non-finite element.

alias T = f32;

const WG: u32 = 256u;
const ITEMS: u32 = 16u;  // elements per invocation in chunk_sums; CHUNK = WG·ITEMS

struct Params {
  n: u32,          // chunk_sums: elements bound; finish: tensor count
  chunks: u32,     // chunk_sums: workgroups (chunks) in this dispatch
  base: u32,       // chunk_sums: index of this dispatch's first partial
  perTensor: u32,  // finish: clip each tensor by its own norm
  maxNorm: f32,    // finish: ≤ 0 means no clipping
  eps: f32,
  invScale: f32,   // finish: 1/loss scale (gradients are divided by it)
}

@group(0) @binding(0) var<storage, read> src: array<T>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> partialBad: array<u32>;
@group(0) @binding(3) var<storage, read> ranges: array<u32>;  // per tensor: first partial, count
@group(0) @binding(4) var<storage, read> partialsIn: array<f32>;
@group(0) @binding(5) var<storage, read> partialBadIn: array<u32>;
@group(0) @binding(6) var<storage, read_write> sums: array<f32>;
@group(0) @binding(7) var<storage, read_write> sumBad: array<u32>;
@group(0) @binding(8) var<storage, read> sumsIn: array<f32>;
@group(0) @binding(9) var<storage, read> sumBadIn: array<u32>;
@group(0) @binding(10) var<storage, read_write> ctl: array<f32>;
@group(0) @binding(11) var<uniform> p: Params;

var<workgroup> acc: array<f32, WG>;
var<workgroup> bad: array<u32, WG>;

fn nonFinite(x: f32) -> u32 {
  return select(0u, 1u, (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u);
}

// Fixed-order tree over the workgroup; every lane returns the total.
fn reduce(lane: u32) {
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      acc[lane] += acc[lane + s];
      bad[lane] |= bad[lane + s];
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(WG)
fn chunk_sums(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let c = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
  if (c >= p.chunks) { return; }  // uniform per workgroup
  let start = c * WG * ITEMS;
  var s = 0.0;
  var b = 0u;
  for (var k = 0u; k < ITEMS; k++) {
    let i = start + k * WG + lid.x;
    if (i < p.n) {
      let x = f32(src[i]);
      s += x * x;
      b |= nonFinite(x);
    }
  }
  acc[lid.x] = s;
  bad[lid.x] = b;
  reduce(lid.x);
  if (lid.x == 0u) {
    partials[p.base + c] = acc[0];
    partialBad[p.base + c] = bad[0];
  }
}

@compute @workgroup_size(WG)
fn tensor_sums(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let t = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
  if (t >= p.n) { return; }
  let first = ranges[2u * t];
  let count = ranges[2u * t + 1u];
  var s = 0.0;
  var b = 0u;
  for (var j = lid.x; j < count; j += WG) {
    s += partialsIn[first + j];
    b |= partialBadIn[first + j];
  }
  acc[lid.x] = s;
  bad[lid.x] = b;
  reduce(lid.x);
  if (lid.x == 0u) {
    sums[t] = acc[0];
    sumBad[t] = bad[0];
  }
}

fn coefficient(norm: f32) -> f32 {
  if (p.maxNorm <= 0.0) { return 1.0; }
  return min(1.0, p.maxNorm / (norm + p.eps));
}

@compute @workgroup_size(WG)
fn finish(@builtin(local_invocation_id) lid: vec3u) {
  let count = p.n;
  var s = 0.0;
  var b = 0u;
  for (var t = lid.x; t < count; t += WG) {
    s += sumsIn[t];
    b |= sumBadIn[t];
  }
  acc[lid.x] = s;
  bad[lid.x] = b;
  reduce(lid.x);
  let norm = sqrt(acc[0]) * p.invScale;
  let ok = bad[0] == 0u && nonFinite(norm) == 0u;
  let globalCoef = coefficient(norm);
  for (var t = lid.x; t < count; t += WG) {
    let tn = sqrt(sumsIn[t]) * p.invScale;
    let c = select(globalCoef, coefficient(tn), p.perTensor != 0u);
    ctl[4u + t] = select(0.0, c * p.invScale, ok);
    ctl[4u + count + t] = tn;
    ctl[4u + 2u * count + t] = f32(sumBadIn[t]);
  }
  if (lid.x == 0u) {
    ctl[0] = norm;
    ctl[1] = select(0.0, 1.0, ok);
    ctl[2] = globalCoef;
    ctl[3] = 0.0;
  }
}
