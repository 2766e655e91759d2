// Peak arithmetic throughput probe: every invocation runs CHAINS independent chains of dependent
// FMAs (independent chains hide the FMA latency), ITERS steps each. FLOPs = 2·CHAINS·ITERS per
// invocation. The result is stored so the compiler cannot drop the work.

const WG: u32 = 256u;
const CHAINS: u32 = 8u;

override ITERS: u32 = 4096u;

@group(0) @binding(0) var<storage, read_write> sink: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = gid.y * nwg.x * WG + gid.x;
  var acc: array<f32, CHAINS>;
  for (var c = 0u; c < CHAINS; c++) { acc[c] = f32(id + c) * 1e-7; }
  let m = 0.9999;
  let k = 1e-4;
  for (var i = 0u; i < ITERS; i++) {
    for (var c = 0u; c < CHAINS; c++) { acc[c] = fma(acc[c], m, k); }
  }
  var total = 0.0;
  for (var c = 0u; c < CHAINS; c++) { total += acc[c]; }
  sink[id] = total;
}
