// a ∘ b with NumPy broadcasting, ∘ ∈ {+, −, ×, ÷}. Broadcast dimensions have stride 0 in the
// input, so one kernel covers every pairing of shapes (up to rank 8).

alias T = f32;

const WG: u32 = 256u;

override OP: u32 = 0u;          // 0 add, 1 sub, 2 mul, 3 div
override BROADCAST: bool = true; // false: both inputs have the output's shape

struct Params {
  n: u32, rank: u32,
  shape: array<vec4u, 2>,    // output shape, outermost first
  strideA: array<vec4u, 2>,  // element strides of a and b per output dimension (0 = broadcast)
  strideB: array<vec4u, 2>,
}

@group(0) @binding(0) var<storage, read> a: array<T>;
@group(0) @binding(1) var<storage, read> b: array<T>;
@group(0) @binding(2) var<storage, read_write> out: array<T>;
@group(0) @binding(3) var<uniform> p: Params;

fn apply(x: f32, y: f32) -> f32 {
  switch OP {
    case 0u: { return x + y; }
    case 1u: { return x - y; }
    case 2u: { return x * y; }
    default: { return x / y; }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lid.x;
  if (i >= p.n) { return; }
  var ia = i;
  var ib = i;
  if (BROADCAST) {
    ia = 0u;
    ib = 0u;
    var rest = i;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
      let extent = p.shape[d / 4][d % 4];
      let coord = rest % extent;
      rest = rest / extent;
      ia += coord * p.strideA[d / 4][d % 4];
      ib += coord * p.strideB[d / 4][d % 4];
    }
  }
  out[i] = T(apply(f32(a[ia]), f32(b[ib])));
}
