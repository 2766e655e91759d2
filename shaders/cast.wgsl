// Element type conversion between f32 and f16 storage (needs the adapter's shader-f16).
enable f16;

const WG: u32 = 256u;

struct Params { n: u32 }

@group(0) @binding(0) var<storage, read> src32: array<f32>;
@group(0) @binding(1) var<storage, read> src16: array<f16>;
@group(0) @binding(2) var<storage, read_write> dst16: array<f16>;
@group(0) @binding(3) var<storage, read_write> dst32: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn to_f16(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lid.x;
  if (i < p.n) { dst16[i] = f16(src32[i]); }
}

@compute @workgroup_size(WG)
fn to_f32(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lid.x;
  if (i < p.n) { dst32[i] = f32(src16[i]); }
}
