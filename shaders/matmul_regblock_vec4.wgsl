// Matrix multiply for CPU adapters when B's rows and C's rows are whole vec4s (N % 4 == 0, B not
// transposed): the same scheme as matmul_regblock.wgsl with four columns per load.
//
// Why vec4 matters on lavapipe: a load whose address differs between SIMD lanes is done lane by
// lane, each with its own bounds check, so its cost is per lane, not per byte; one vec4 load shares
// that per-lane overhead among four values. A's loads have the same address in every lane (all
// invocations of a workgroup share its TM rows), which lavapipe turns into one scalar load and a
// broadcast. Invocation `lane` owns the vec4 columns col0 + lane + j·WG, j < TN.
// C[b] = op(A[b]) · B[b] (+ bias). Accumulates in f32.

alias T = f32;

const TM: u32 = 6u;   // rows per workgroup
const TN: u32 = 2u;   // vec4 columns per invocation
const WG: u32 = 16u;  // invocations per workgroup

override TRANS_A: bool = false;
override HAS_BIAS: bool = false;

struct Params {
  M: u32, N: u32, K: u32,
  strideA: u32, strideB: u32, strideC: u32,
  rowTile0: u32,  // first row tile of this dispatch (tall outputs take several dispatches)
  ldc: u32,       // row stride of c: N, or more when c is a column block of a wider matrix
}

@group(0) @binding(0) var<storage, read> a: array<T>;
@group(0) @binding(1) var<storage, read> b: array<vec4<T>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<T>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<T>>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let N4 = p.N / 4u;
  let row0 = (wid.x + p.rowTile0) * TM;  // row tiles run along x: consecutive workgroups reuse one panel of B
  let col0 = wid.y * WG * TN + lid.x;
  let aBase = wid.z * p.strideA;
  let bBase = wid.z * p.strideB / 4u;

  // Out-of-range rows and columns read a clamped (valid) element and are not stored.
  var aOff: array<u32, TM>;
  for (var r = 0u; r < TM; r++) {
    let m = min(row0 + r, p.M - 1u);
    aOff[r] = aBase + select(m * p.K, m, TRANS_A);
  }
  let aStep = select(1u, p.M, TRANS_A);
  var bOff: array<u32, TN>;
  for (var j = 0u; j < TN; j++) { bOff[j] = bBase + min(col0 + j * WG, N4 - 1u); }

  var acc: array<array<vec4f, TN>, TM>;
  for (var k = 0u; k < p.K; k++) {
    var bv: array<vec4f, TN>;
    for (var j = 0u; j < TN; j++) { bv[j] = vec4f(b[bOff[j] + k * N4]); }
    for (var r = 0u; r < TM; r++) {
      let av = vec4f(f32(a[aOff[r] + k * aStep]));
      for (var j = 0u; j < TN; j++) { acc[r][j] = fma(av, bv[j], acc[r][j]); }
    }
  }

  let cBase = wid.z * p.strideC / 4u;
  for (var j = 0u; j < TN; j++) {
    let n = col0 + j * WG;
    if (n >= N4) { continue; }
    var bn = vec4f(0.0);
    if (HAS_BIAS) { bn = vec4f(bias[n]); }
    for (var r = 0u; r < TM; r++) {
      let m = row0 + r;
      if (m < p.M) { c[cBase + m * (p.ldc / 4u) + n] = vec4<T>(acc[r][j] + bn); }
    }
  }
}
