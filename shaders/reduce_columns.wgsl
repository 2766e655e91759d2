// N sums of R values each, for CPU adapters: no workgroup memory, no barriers, no index division per
// element. Value r of sum c is src[r·rs + c·cs]: over the leading rows of a contiguous [R, N] array
// (a bias gradient: rs = N, cs = 1) or over the trailing run of [N, R] (a spatial mean: rs = 1,
// cs = R). `chunkSums`: lane (k, c) adds values k·L … k·L + L − 1 of sum c in order into part[k][c];
// `finish`: lane c adds part[0][c] … part[K−1][c] in order, times `scale`. Fixed order, so bitwise
// reproducible.

alias T = f32;

const WG: u32 = 64u;

struct Params {
  R: u32, N: u32, L: u32, K: u32,
  rs: u32, cs: u32, scale: f32,
}

@group(0) @binding(0) var<storage, read> src: array<T>;
@group(0) @binding(1) var<storage, read_write> part: array<f32>;  // [K][N]
@group(0) @binding(2) var<storage, read_write> dst: array<T>;
@group(0) @binding(3) var<uniform> p: Params;

fn invocation(wid: vec3u, nwg: vec3u, lid: vec3u) -> u32 {
  return ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lid.x;
}

@compute @workgroup_size(WG)
fn chunkSums(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let lane = invocation(wid, nwg, lid);
  if (lane >= p.K * p.N) { return; }
  let c = lane % p.N;
  let k = lane / p.N;
  let r0 = k * p.L;
  let r1 = min(r0 + p.L, p.R);
  var at = r0 * p.rs + c * p.cs;
  var acc = 0.0;
  for (var r = r0; r < r1; r++) {
    acc += f32(src[at]);
    at += p.rs;
  }
  part[lane] = acc;
}

@compute @workgroup_size(WG)
fn finish(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let c = invocation(wid, nwg, lid);
  if (c >= p.N) { return; }
  var acc = 0.0;
  var at = c;
  for (var k = 0u; k < p.K; k++) {
    acc += part[at];
    at += p.N;
  }
  dst[c] = T(acc * p.scale);
}
