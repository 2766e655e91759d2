// Exponential moving average of weights (DINO's teacher update), one invocation per element, f32:
//   teacher ← m·teacher + (1−m)·student
// 1−m comes from the host in float64 (m is near 1, so forming it in f32 would lose digits).

const WG: u32 = 256u;

struct Params { n: u32, momentum: f32, oneMinusMomentum: f32 }

@group(0) @binding(0) var<storage, read_write> teacher: array<f32>;
@group(0) @binding(1) var<storage, read> student: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lid.x;
  if (i >= p.n) { return; }
  teacher[i] = p.momentum * teacher[i] + p.oneMinusMomentum * student[i];
}
