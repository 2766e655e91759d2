// Matrix multiply for CPU adapters (lavapipe, SwiftShader): register blocking, no workgroup memory,
// no barriers. On a CPU adapter a workgroup runs as a loop on one core and each barrier is a
// context switch, so the tile lives in registers and the caches do the sharing.
//
// A workgroup computes TM rows × (WG·TN) columns. Every invocation of a workgroup works on the same
// TM rows, so A's loads have one address across the SIMD lanes, which lavapipe does as one scalar
// load and a broadcast; B's loads differ per lane and are done lane by lane, so each is reused TM
// times. Column j of an invocation is col0 + lane + j·WG. This scalar kernel takes any layout;
// matmul_regblock_vec4.wgsl is faster where N % 4 == 0 and B is not transposed.
// C[b] = op(A[b]) · op(B[b]) (+ bias). Accumulates in f32.

alias T = f32;

const TM: u32 = 8u;   // rows per workgroup (per invocation)
const TN: u32 = 4u;   // columns per invocation
const WG: u32 = 64u;  // invocations per workgroup

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;

struct Params {
  M: u32, N: u32, K: u32,
  strideA: u32, strideB: u32, strideC: u32,
  rowTile0: u32,  // first row tile of this dispatch (tall outputs take several dispatches)
  ldc: u32,       // row stride of c: N, or more when c is a column block of a wider matrix
}

@group(0) @binding(0) var<storage, read> a: array<T>;
@group(0) @binding(1) var<storage, read> b: array<T>;
@group(0) @binding(2) var<storage, read> bias: array<T>;
@group(0) @binding(3) var<storage, read_write> c: array<T>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row0 = (wid.x + p.rowTile0) * TM;  // row tiles run along x: consecutive workgroups reuse one panel of B
  let col0 = wid.y * WG * TN + lid.x;
  let aBase = wid.z * p.strideA;
  let bBase = wid.z * p.strideB;

  // Out-of-range rows and columns load a clamped (valid) element and are not stored, which keeps
  // the inner loop free of branches.
  var aOff: array<u32, TM>;
  var aStep: u32;
  for (var r = 0u; r < TM; r++) {
    let m = min(row0 + r, p.M - 1u);
    aOff[r] = aBase + select(m * p.K, m, TRANS_A);
  }
  aStep = select(1u, p.M, TRANS_A);
  var bOff: array<u32, TN>;
  for (var j = 0u; j < TN; j++) {
    let n = min(col0 + j * WG, p.N - 1u);
    bOff[j] = bBase + select(n, n * p.K, TRANS_B);
  }
  let bStep = select(p.N, 1u, TRANS_B);

  var acc: array<array<f32, TN>, TM>;
  for (var k = 0u; k < p.K; k++) {
    var bv: array<f32, TN>;
    for (var j = 0u; j < TN; j++) { bv[j] = f32(b[bOff[j] + k * bStep]); }
    for (var r = 0u; r < TM; r++) {
      let av = f32(a[aOff[r] + k * aStep]);
      for (var j = 0u; j < TN; j++) { acc[r][j] = fma(av, bv[j], acc[r][j]); }
    }
  }

  let cBase = wid.z * p.strideC;
  for (var j = 0u; j < TN; j++) {
    let n = col0 + j * WG;
    if (n >= p.N) { continue; }
    var bn = 0.0;
    if (HAS_BIAS) { bn = f32(bias[n]); }
    for (var r = 0u; r < TM; r++) {
      let m = row0 + r;
      if (m < p.M) { c[cBase + m * p.ldc + n] = T(acc[r][j] + bn); }
    }
  }
}
