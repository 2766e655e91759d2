// Cross entropy between soft targets t and log-softmax(logits), per row:
//   loss_r = −Σ_c t_c·log_softmax(x)_c = Σ_c t_c·(log S − (x_c − m)),  m = max x, S = Σ exp(x − m).
// lse = m + log S is never formed: with m near −3.4e38 (a masked row) the sum would lose log S.
// The mean over rows is taken by the reduce kernel. Backward, with s = upstream gradient / rows:
//   ∂/∂x_c = s·(softmax(x)_c·Σt − t_c),  ∂/∂t_c = s·(lse − x_c)  (targets may come from a network).

alias T = f32;

const WG: u32 = 64u;

override WRITE_DX: bool = true;  // off when the logits need no gradient
override WRITE_DT: bool = true;  // off when the targets need no gradient (e.g. a teacher's output)

struct Params { rows: u32, C: u32, n: u32 }

@group(0) @binding(0) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read> t: array<T>;
@group(0) @binding(2) var<storage, read> gradOut: array<f32>;      // upstream scalar gradient (the loss is f32)
@group(0) @binding(3) var<storage, read_write> rowLoss: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;  // [rows][3]: m, log S, Σt
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
  let row = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
  if (row >= p.rows) { return; }
  let base = row * p.C;
  var m = f32(x[base]);  // a real element, so rows of huge negative values (masks) stay finite
  for (var c = lid.x; c < p.C; c += WG) { m = max(m, f32(x[base + c])); }
  m = workgroupReduce(m, lid.x, true);
  var s = 0.0;
  for (var c = lid.x; c < p.C; c += WG) { s += exp(f32(x[base + c]) - m); }
  let logS = log(workgroupReduce(s, lid.x, false));
  var loss = 0.0;
  var tsum = 0.0;
  for (var c = lid.x; c < p.C; c += WG) {
    let tc = f32(t[base + c]);
    loss += tc * (logS - (f32(x[base + c]) - m));
    tsum += tc;
  }
  loss = workgroupReduce(loss, lid.x, false);
  tsum = workgroupReduce(tsum, lid.x, false);
  if (lid.x == 0u) {
    rowLoss[row] = loss;
    stats[3u * row] = m;
    stats[3u * row + 1u] = logS;
    stats[3u * row + 2u] = tsum;
  }
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid.x;
  if (i >= p.n) { return; }
  let row = i / p.C;
  let s = gradOut[0] / f32(p.rows);
  let logp = (f32(x[i]) - stats[3u * row]) - stats[3u * row + 1u];  // log_softmax(x)_i
  if (WRITE_DX) { dx[i] = T(s * (exp(logp) * stats[3u * row + 2u] - f32(t[i]))); }
  if (WRITE_DT) { dt[i] = T(-s * logp); }
}
