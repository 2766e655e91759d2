// Cross entropy between soft targets t and log-softmax(logits), per row:
//   loss_r = −Σ_c t_c·log_softmax(x)_c = Σ_c t_c·(lse_r − x_c),  lse_r = log Σ_c exp(x_c).
// The mean over rows is taken by the reduce kernel. Backward, with s = upstream gradient / rows:
//   ∂/∂x_c = s·(softmax(x)_c·Σt − t_c),  ∂/∂t_c = s·(lse − x_c)  (targets may come from a network).

alias T = f32;

const WG: u32 = 64u;

struct Params { rows: u32, C: u32, n: u32 }

@group(0) @binding(0) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read> t: array<T>;
@group(0) @binding(2) var<storage, read> gradOut: array<f32>;      // upstream scalar gradient (the loss is f32)
@group(0) @binding(3) var<storage, read_write> rowLoss: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;  // [rows][2]: lse, Σt
@group(0) @binding(5) var<storage, read_write> dx: array<T>;
@group(0) @binding(6) var<storage, read_write> dt: array<T>;
@group(0) @binding(7) var<uniform> p: Params;

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
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= p.rows) { return; }
  let base = row * p.C;
  var m = -3.0e38;
  for (var c = lid.x; c < p.C; c += WG) { m = max(m, f32(x[base + c])); }
  m = workgroupReduce(m, lid.x, true);
  var s = 0.0;
  for (var c = lid.x; c < p.C; c += WG) { s += exp(f32(x[base + c]) - m); }
  let lse = m + log(workgroupReduce(s, lid.x, false));
  var loss = 0.0;
  var tsum = 0.0;
  for (var c = lid.x; c < p.C; c += WG) {
    let tc = f32(t[base + c]);
    loss += tc * (lse - f32(x[base + c]));
    tsum += tc;
  }
  loss = workgroupReduce(loss, lid.x, false);
  tsum = workgroupReduce(tsum, lid.x, false);
  if (lid.x == 0u) {
    rowLoss[row] = loss;
    stats[2u * row] = lse;
    stats[2u * row + 1u] = tsum;
  }
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
  if (i >= p.n) { return; }
  let row = i / p.C;
  let s = gradOut[0] / f32(p.rows);
  let lse = stats[2u * row];
  let xv = f32(x[i]);
  dx[i] = T(s * (exp(xv - lse) * stats[2u * row + 1u] - f32(t[i])));
  dt[i] = T(s * (lse - xv));
}
