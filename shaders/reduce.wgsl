// Sum over any set of axes, times a scale (mean = sum / count). One workgroup per output element;
// its invocations stride over the reduced elements and combine partial sums in a fixed tree, so
// the result is bitwise reproducible (WGSL has no float atomics, and none are used).

alias T = f32;

const WG: u32 = 64u;

struct Params {
  outCount: u32, redCount: u32, keptRank: u32, redRank: u32,
  scale: f32,
  keptShape: array<vec4u, 2>, keptStride: array<vec4u, 2>,  // kept axes: extents and input strides
  redShape: array<vec4u, 2>, redStride: array<vec4u, 2>,    // reduced axes
}

@group(0) @binding(0) var<storage, read> src: array<T>;
@group(0) @binding(1) var<storage, read_write> dst: array<T>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let o = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
  if (o >= p.outCount) { return; }  // uniform per workgroup, so the barriers below stay uniform
  var base = 0u;
  var rest = o;
  for (var d = i32(p.keptRank) - 1; d >= 0; d--) {
    let extent = p.keptShape[d / 4][d % 4];
    base += (rest % extent) * p.keptStride[d / 4][d % 4];
    rest /= extent;
  }
  var acc = 0.0;
  for (var r = lid.x; r < p.redCount; r += WG) {
    var off = base;
    var rr = r;
    for (var d = i32(p.redRank) - 1; d >= 0; d--) {
      let extent = p.redShape[d / 4][d % 4];
      off += (rr % extent) * p.redStride[d / 4][d % 4];
      rr /= extent;
    }
    acc += f32(src[off]);
  }
  partial[lid.x] = acc;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s) { partial[lid.x] += partial[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { dst[o] = T(partial[0] * p.scale); }
}
