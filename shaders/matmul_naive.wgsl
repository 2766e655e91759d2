// Matrix multiply, one invocation per output element: the baseline the other variants are measured against.
// C[b] = op(A[b]) · op(B[b]) (+ bias), op = optional transpose. Accumulates in f32.

alias T = f32;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;

struct Params {
  M: u32, N: u32, K: u32,
  strideA: u32, strideB: u32, strideC: u32,  // per-batch element strides (0: shared across the batch)
  rowTile0: u32,  // first row tile of this dispatch (tall outputs take several dispatches)
  ldc: u32,       // row stride of c: N, or more when c is a column block of a wider matrix
}

@group(0) @binding(0) var<storage, read> a: array<T>;
@group(0) @binding(1) var<storage, read> b: array<T>;
@group(0) @binding(2) var<storage, read> bias: array<T>;
@group(0) @binding(3) var<storage, read_write> c: array<T>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let n = gid.x;
  let m = gid.y + p.rowTile0 * 16u;
  if (m >= p.M || n >= p.N) { return; }
  let aBase = gid.z * p.strideA;
  let bBase = gid.z * p.strideB;
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) {
    var av: T;
    var bv: T;
    if (TRANS_A) { av = a[aBase + k * p.M + m]; } else { av = a[aBase + m * p.K + k]; }
    if (TRANS_B) { bv = b[bBase + n * p.K + k]; } else { bv = b[bBase + k * p.N + n]; }
    acc = fma(f32(av), f32(bv), acc);
  }
  if (HAS_BIAS) { acc += f32(bias[n]); }
  c[gid.z * p.strideC + m * p.ldc + n] = T(acc);
}
