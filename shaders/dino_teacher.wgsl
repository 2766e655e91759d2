// The teacher side of DINO / iBOT (no gradients): centred, sharpened softmax
//   q_r = softmax((t_r − c)·invTemp)            (a workgroup per row, max-subtracted)
// and the centre's EMA, in place:
//   c_k ← momentum·c_k + (1 − momentum)·(Σ_r t_rk) / rows
// (an invocation per column summing the rows in order: deterministic, and adjacent lanes read
// adjacent columns).

alias T = f32;

const WG: u32 = 64u;

struct Params { rows: u32, C: u32, invTemp: f32, momentum: f32 }

@group(0) @binding(0) var<storage, read> t: array<T>;
@group(0) @binding(1) var<storage, read_write> center: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<T>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> red: array<f32, WG>;

fn workgroupReduce(v: f32, lane: u32, isMax: bool) -> f32 {
  red[lane] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      if (isMax) { red[lane] = max(red[lane], red[lane + s]); } else { red[lane] += red[lane + s]; }
    }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(WG)
fn softmax_centered(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
  if (row >= p.rows) { return; }
  let base = row * p.C;
  var m = (f32(t[base]) - center[0]) * p.invTemp;
  for (var c = lid.x; c < p.C; c += WG) { m = max(m, (f32(t[base + c]) - center[c]) * p.invTemp); }
  m = workgroupReduce(m, lid.x, true);
  var e = 0.0;
  for (var c = lid.x; c < p.C; c += WG) { e += exp((f32(t[base + c]) - center[c]) * p.invTemp - m); }
  let inv = 1.0 / workgroupReduce(e, lid.x, false);
  for (var c = lid.x; c < p.C; c += WG) { out[base + c] = T(exp((f32(t[base + c]) - center[c]) * p.invTemp - m) * inv); }
}

@compute @workgroup_size(256)
fn center_update(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let k = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid.x;
  if (k >= p.C) { return; }
  var acc = 0.0;
  for (var r = 0u; r < p.rows; r++) { acc += f32(t[r * p.C + k]); }
  center[k] = p.momentum * center[k] + (1.0 - p.momentum) * (acc / f32(p.rows));
}
