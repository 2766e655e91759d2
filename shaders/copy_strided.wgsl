// Strided copy over an index space of up to rank 8:
//   out[outOffset + Σ i_d·outStride_d] = in[inOffset + Σ i_d·inStride_d].
// One kernel serves permute (permuted input strides), slice (offset + strides), concat (output
// offset per part), the backward of each, and broadcast expansion (stride 0). With ACCUMULATE it
// adds into dst instead (backward of gathers that read an element more than once); the index map
// is one-to-one within a dispatch, so no two invocations touch the same element.

alias T = f32;

const WG: u32 = 256u;

override ACCUMULATE: bool = false;

struct Params {
  n: u32, rank: u32, inOffset: u32, outOffset: u32,
  shape: array<vec4u, 2>,
  inStride: array<vec4u, 2>,
  outStride: array<vec4u, 2>,
}

@group(0) @binding(0) var<storage, read> src: array<T>;
@group(0) @binding(1) var<storage, read_write> dst: array<T>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lid.x;
  if (i >= p.n) { return; }
  var rest = i;
  var si = p.inOffset;
  var di = p.outOffset;
  for (var d = i32(p.rank) - 1; d >= 0; d--) {
    let extent = p.shape[d / 4][d % 4];
    let coord = rest % extent;
    rest = rest / extent;
    si += coord * p.inStride[d / 4][d % 4];
    di += coord * p.outStride[d / 4][d % 4];
  }
  if (ACCUMULATE) { dst[di] = dst[di] + src[si]; } else { dst[di] = src[si]; }
}
