// Matrix multiply for GPUs: BM×BN output tiles per workgroup, BK-deep slices of A and B staged in
// workgroup memory, and a TM×TN register block per invocation. Invocation (tx, ty) owns rows
// ty + r·(BM/TM) and columns tx + j·(BN/TN), so neighbouring invocations read neighbouring words
// of the staged tiles. A is staged k-major so both operands are read along the tile's inner index.
// C[b] = op(A[b]) · op(B[b]) (+ bias). Accumulates in f32.

alias T = f32;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
const TM: u32 = 4u;
const TN: u32 = 4u;
const WX: u32 = BN / TN;          // invocations along columns
const WY: u32 = BM / TM;          // invocations along rows
const THREADS: u32 = WX * WY;

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

var<workgroup> tileA: array<f32, BK * BM>;  // [k][m]
var<workgroup> tileB: array<f32, BK * BN>;  // [k][n]

fn loadA(base: u32, m: u32, k: u32) -> f32 {
  if (m >= p.M || k >= p.K) { return 0.0; }
  return f32(a[base + select(m * p.K + k, k * p.M + m, TRANS_A)]);
}

fn loadB(base: u32, k: u32, n: u32) -> f32 {
  if (k >= p.K || n >= p.N) { return 0.0; }
  return f32(b[base + select(k * p.N + n, n * p.K + k, TRANS_B)]);
}

@compute @workgroup_size(WX, WY)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let tx = lid.x;
  let ty = lid.y;
  let t = ty * WX + tx;
  let row0 = (wid.y + p.rowTile0) * BM;
  let col0 = wid.x * BN;
  let aBase = wid.z * p.strideA;
  let bBase = wid.z * p.strideB;

  var acc: array<array<f32, TN>, TM>;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    // Stage the slices; consecutive invocations take consecutive global addresses.
    for (var e = t; e < BM * BK; e += THREADS) {
      var m: u32; var k: u32;
      if (TRANS_A) { k = e / BM; m = e % BM; } else { m = e / BK; k = e % BK; }
      tileA[k * BM + m] = loadA(aBase, row0 + m, k0 + k);
    }
    for (var e = t; e < BK * BN; e += THREADS) {
      var k: u32; var n: u32;
      if (TRANS_B) { n = e / BK; k = e % BK; } else { k = e / BN; n = e % BN; }
      tileB[k * BN + n] = loadB(bBase, k0 + k, col0 + n);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      var av: array<f32, TM>;
      var bv: array<f32, TN>;
      for (var r = 0u; r < TM; r++) { av[r] = tileA[kk * BM + ty + r * WY]; }
      for (var j = 0u; j < TN; j++) { bv[j] = tileB[kk * BN + tx + j * WX]; }
      for (var r = 0u; r < TM; r++) {
        for (var j = 0u; j < TN; j++) { acc[r][j] = fma(av[r], bv[j], acc[r][j]); }
      }
    }
    workgroupBarrier();
  }

  let cBase = wid.z * p.strideC;
  for (var j = 0u; j < TN; j++) {
    let n = col0 + tx + j * WX;
    if (n >= p.N) { continue; }
    var bn = 0.0;
    if (HAS_BIAS) { bn = f32(bias[n]); }
    for (var r = 0u; r < TM; r++) {
      let m = row0 + ty + r * WY;
      if (m < p.M) { c[cBase + m * p.ldc + n] = T(acc[r][j] + bn); }
    }
  }
}
