// Strided copy for CPU adapters (lavapipe, SwiftShader), same contract as copy_strided.wgsl:
//   out[outOffset + Σ i_d·outStride_d] = in[inOffset + Σ i_d·inStride_d]   (ACCUMULATE: +=).
// copy_strided.wgsl turns every element's flat index into coordinates, one division and one
// modulo per axis, with the extents and strides read at dynamic uniform offsets; on a CPU adapter
// each of those is done lane by lane and costs more than the copy itself. Here a lane copies a run
// of RUN consecutive elements along the last axis: the coordinates are worked out once per run,
// with the axis loop unrolled over the uniform's fixed slots (constant offsets), and the run steps
// by the last axis' strides. The host merges axes that are contiguous on both sides first, so the
// last axis is as long as the layout allows.

alias T = f32;

const WG: u32 = 64u;
const RUN: u32 = 8u;

override ACCUMULATE: bool = false;

struct Params {
  n: u32, rank: u32, inOffset: u32, outOffset: u32,
  shape: array<vec4u, 2>,
  inStride: array<vec4u, 2>,
  outStride: array<vec4u, 2>,
  runs: u32,      // runs per row of the last axis: ⌈shape[rank − 1] / RUN⌉
  total: u32,     // runs in all
}

@group(0) @binding(0) var<storage, read> src: array<T>;
@group(0) @binding(1) var<storage, read_write> dst: array<T>;
@group(0) @binding(2) var<uniform> p: Params;

fn extent(d: u32) -> u32 { return p.shape[d / 4u][d % 4u]; }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let r = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lid.x;
  if (r >= p.total) { return; }
  let last = p.rank - 1u;
  let x0 = (r % p.runs) * RUN;
  var rest = r / p.runs;
  var si = p.inOffset;
  var di = p.outOffset;
  // Axes rank − 2 … 0; unused slots have extent 0 and are skipped.
  for (var k = 0u; k < 7u; k++) {
    let d = 6u - k;
    if (d < last) {
      let e = extent(d);
      let c = rest % e;
      rest = rest / e;
      si += c * p.inStride[d / 4u][d % 4u];
      di += c * p.outStride[d / 4u][d % 4u];
    }
  }
  let len = extent(last);
  let is = p.inStride[last / 4u][last % 4u];
  let os = p.outStride[last / 4u][last % 4u];
  si += x0 * is;
  di += x0 * os;
  for (var t = 0u; t < RUN; t++) {
    if (x0 + t < len) {
      if (ACCUMULATE) { dst[di] = dst[di] + src[si]; } else { dst[di] = src[si]; }
    }
    si += is;
    di += os;
  }
}
