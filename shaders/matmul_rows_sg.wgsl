// Matrix multiply with few output columns (N ≤ 48: the Linear layers of a small Swin, x·Wᵀ with
// C = 12…48) for CPU adapters with subgroups of SG lanes. matmul_regblock.wgsl runs its lanes
// along the columns, 64 per workgroup, so at N = 12 most lanes compute padding; and on such an
// adapter every storage load is a loop over the SIMD lanes, also when all lanes share the address.
// Here a lane owns TR rows and the 12 columns of its workgroup's group (grid y), held as three
// vec4 accumulators per row. Row k of B's group is loaded once per subgroup, ⌈12 / SG⌉ values a
// lane, and handed round with shuffles at constant lanes: per k a lane does TR + 2 loads for
// 12·TR multiply-adds. Lanes past M compute on a clamped row and store nothing, so the shuffles
// run with every lane of the subgroup.
// C[b] = op(A[b]) · op(B[b]) (+ bias). Accumulates in f32.

enable subgroups;
// Shuffles run where all lanes of a subgroup take part (see above); the analysis cannot see that.
diagnostic(off, subgroup_uniformity);

alias T = f32;

const TR: u32 = 4u;   // rows per lane
const WG: u32 = 64u;  // invocations per workgroup
const SG: u32 = 8u;   // subgroup size
const NC: u32 = 12u;  // columns per group (3 vec4s)
const NL: u32 = (NC + SG - 1u) / SG;  // B values loaded per lane and k

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;

struct Params {
  M: u32, N: u32, K: u32,
  strideA: u32, strideB: u32, strideC: u32,
  rowTile0: u32,  // first row tile (workgroup) of this dispatch
  ldc: u32,
}

@group(0) @binding(0) var<storage, read> a: array<T>;
@group(0) @binding(1) var<storage, read> b: array<T>;
@group(0) @binding(2) var<storage, read> bias: array<T>;
@group(0) @binding(3) var<storage, read_write> c: array<T>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32, @builtin(subgroup_invocation_id) sg: u32) {
  let row0 = ((wid.x + p.rowTile0) * WG + lane) * TR;
  let col0 = wid.y * NC;
  let aBase = wid.z * p.strideA;
  let bBase = wid.z * p.strideB;

  var aOff: array<u32, TR>;
  for (var r = 0u; r < TR; r++) {
    let m = min(row0 + r, p.M - 1u);
    aOff[r] = aBase + select(m * p.K, m, TRANS_A);
  }
  let aStep = select(1u, p.M, TRANS_A);
  // This lane's share of a row of B: columns col0 + sg, col0 + sg + SG, … (clamped).
  var bOff: array<u32, NL>;
  for (var i = 0u; i < NL; i++) {
    let n = min(col0 + min(i * SG + sg, NC - 1u), p.N - 1u);
    bOff[i] = bBase + select(n, n * p.K, TRANS_B);
  }
  let bStep = select(p.N, 1u, TRANS_B);

  var acc: array<array<vec4f, 3>, TR>;
  for (var k = 0u; k < p.K; k++) {
    var bl: array<f32, NL>;
    for (var i = 0u; i < NL; i++) { bl[i] = f32(b[bOff[i] + k * bStep]); }
    var bv: array<vec4f, 3>;
    for (var v = 0u; v < 3u; v++) {
      let e = 4u * v;
      bv[v] = vec4f(
        subgroupShuffle(bl[e / SG], e % SG),
        subgroupShuffle(bl[(e + 1u) / SG], (e + 1u) % SG),
        subgroupShuffle(bl[(e + 2u) / SG], (e + 2u) % SG),
        subgroupShuffle(bl[(e + 3u) / SG], (e + 3u) % SG));
    }
    for (var r = 0u; r < TR; r++) {
      let av = vec4f(f32(a[aOff[r] + k * aStep]));
      for (var v = 0u; v < 3u; v++) { acc[r][v] = fma(av, bv[v], acc[r][v]); }
    }
  }

  let cBase = wid.z * p.strideC;
  for (var r = 0u; r < TR; r++) {
    let m = row0 + r;
    if (m >= p.M) { break; }
    for (var v = 0u; v < 3u; v++) {
      for (var e = 0u; e < 4u; e++) {
        let n = col0 + 4u * v + e;
        if (n < p.N) {
          var x = acc[r][v][e];
          if (HAS_BIAS) { x += f32(bias[n]); }
          c[cBase + m * p.ldc + n] = T(x);
        }
      }
    }
  }
}
