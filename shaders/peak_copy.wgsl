// Memory bandwidth probe: a plain vec4 copy. Bytes moved = 2 × buffer size (read + write).

const WG: u32 = 256u;

struct Params { n: u32 }

@group(0) @binding(0) var<storage, read> src: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4f>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lid.x;
  if (i < p.n) { dst[i] = src[i]; }
}
