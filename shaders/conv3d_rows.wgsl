// 3D convolution for CPU adapters (lavapipe, SwiftShader): stride 1, zero padding, no bias,
// channels-first, as shaders/conv3d.wgsl computes it, laid out for an adapter that runs a
// workgroup's lanes as SIMD groups on one core and pays for every storage load lane by lane.
// What counts there is multiply-adds per load, so each lane owns a short run of outputs along W
// and a block of 4·V output channels held as vec4s, and reuses every loaded value many times.
//
//   x: [B, Ci, D, H, W]   weight: [Co, Ci, KS, KS, KS] (PyTorch)   y: [B, Co, OD, OH, OW]
//
// arrange_weight: wT[c, tap, n] (n padded to NG·4V with zeros) from the weight, so a (c, tap) row
//   of output channels is V vec4 loads. forward: wT[c, tap, n] = weight[n, c, tap];
//   backward_input: wT[c = co, tap, n = ci] = weight[co, ci, KK − 1 − tap] (dx is the convolution
//   of dy with the flipped, transposed kernel, padding KS − 1 − P).
// forward / backward_input: a lane owns TW consecutive outputs along W of one output row
//   (b, od, oh) and the 4·V channels of its group (workgroup y). Per input channel and (kd, kh) it
//   loads the TW + KS − 1 input values its outputs touch along W once and V·KS weight vec4s:
//   3·TW·4V multiply-adds for TW + KS − 1 + KS·V loads (144 for 15 at TW 4, V 3).
// backward_weight: dW[n, c, kd, kh, kw] = Σ dy[b, n, o] · x[b, c, o + tap − P]. A lane owns one
//   (c, kd), its KS² (kh, kw) taps, the 4·V channels of its group, and a chunk of output rows;
//   walking a row along W it keeps the KS input values of each kh in a sliding window (one new
//   load per kh and position) and loads 4·V dy values. Partial sums per chunk go to
//   partial[chunk, n, c·KK + tap]; sum_chunks adds the chunks in order: bitwise deterministic.
// Accumulates in f32.

alias T = f32;

const KS: u32 = 3u;   // kernel size
const WG: u32 = 64u;  // invocations per workgroup
const TW: u32 = 4u;   // outputs along W per lane (forward, backward_input)
const V: u32 = 3u;    // vec4 groups of output channels per lane (4·V channels)
const KK: u32 = KS * KS * KS;
const RW: u32 = TW + KS - 1u;  // input values along W per row (forward)

struct Params {
  CR: u32,                     // channels summed over (forward: Ci; backward_input: Co)
  NO: u32,                     // channels produced
  NG: u32,                     // groups of 4·V output channels
  ID: u32, IH: u32, IW: u32,   // volume of src
  OD: u32, OH: u32, OW: u32,   // volume of the outputs
  PAD: i32,                    // zero padding before each spatial axis
  rows: u32,                   // B · OD · OH output rows
  segs: u32,                   // runs of TW outputs per row
  t0x: u32,                    // split grids: first workgroup along x (forward), first element (others)
  total: u32,                  // elements of wT (arrange_weight) or of dW (sum_chunks)
  wStepN: u32, wStepC: u32,    // weight strides of (n, c) in this GEMM (arrange_weight)
  flip: u32,                   // backward_input: taps reversed (arrange_weight)
  chunks: u32,                 // chunks of output rows (backward_weight, sum_chunks)
  rowsPerChunk: u32,
}

@group(0) @binding(0) var<storage, read> weight: array<T>;
@group(0) @binding(1) var<storage, read_write> wT: array<vec4<T>>;
@group(0) @binding(2) var<storage, read> src: array<T>;
@group(0) @binding(3) var<storage, read> wv: array<vec4<T>>;
@group(0) @binding(4) var<storage, read_write> dst: array<T>;
@group(0) @binding(5) var<storage, read> grad: array<T>;
@group(0) @binding(6) var<storage, read_write> partial: array<f32>;
@group(0) @binding(7) var<storage, read> parts: array<f32>;
@group(0) @binding(8) var<storage, read_write> dw: array<T>;
@group(0) @binding(9) var<uniform> p: Params;

// Flat index on an x·y·z grid of one-dimensional work; t0x is this dispatch's first element.
fn linearId(wid: vec3u, nwg: vec3u, lane: u32) -> u32 {
  return p.t0x + ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lane;
}

// One vec4 (four output channels) per invocation: wT[(c·KK + tap)·NG·V + q], q over n / 4.
@compute @workgroup_size(WG)
fn arrange_weight(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let e = linearId(wid, nwg, lid.x);
  if (e >= p.total) { return; }
  let NQ = p.NG * V;
  let q = e % NQ;
  let ct = e / NQ;
  let tap = ct % KK;
  let c = ct / KK;
  let wt = select(tap, KK - 1u - tap, p.flip != 0u);
  var out = vec4<T>();
  for (var i = 0u; i < 4u; i++) {
    let n = q * 4u + i;
    if (n < p.NO) { out[i] = weight[n * p.wStepN + c * p.wStepC + wt]; }
  }
  wT[e] = out;
}

fn convRows(wid: vec3u, lane: u32) {
  let u = (wid.x + p.t0x) * WG + lane;
  if (u >= p.rows * p.segs) { return; }
  let grp = wid.y;
  let IS = p.ID * p.IH * p.IW;
  let OS = p.OD * p.OH * p.OW;
  let seg = u % p.segs;
  let row = u / p.segs;
  let oh = row % p.OH;
  let od = (row / p.OH) % p.OD;
  let b = row / (p.OH * p.OD);
  let ow0 = i32(seg * TW) - p.PAD;
  let NQ = p.NG * V;

  var acc: array<vec4<f32>, TW * V>;
  for (var c = 0u; c < p.CR; c++) {
    let plane = (b * p.CR + c) * IS;
    for (var kd = 0u; kd < KS; kd++) {
      let d = i32(od + kd) - p.PAD;
      if (d < 0 || d >= i32(p.ID)) { continue; }
      for (var kh = 0u; kh < KS; kh++) {
        let h = i32(oh + kh) - p.PAD;
        if (h < 0 || h >= i32(p.IH)) { continue; }
        let line = plane + u32(d * i32(p.IH) + h) * p.IW;
        var a: array<f32, RW>;
        for (var i = 0u; i < RW; i++) {
          let w = ow0 + i32(i);
          let ok = w >= 0 && w < i32(p.IW);
          a[i] = select(0.0, f32(src[select(0u, line + u32(w), ok)]), ok);
        }
        let wrow = ((c * KS + kd) * KS + kh) * KS * NQ + grp * V;
        for (var kw = 0u; kw < KS; kw++) {
          for (var v = 0u; v < V; v++) {
            let wq = vec4<f32>(wv[wrow + kw * NQ + v]);
            for (var t = 0u; t < TW; t++) { acc[t * V + v] = fma(vec4<f32>(a[t + kw]), wq, acc[t * V + v]); }
          }
        }
      }
    }
  }

  let rowOut = (od * p.OH + oh) * p.OW;
  for (var t = 0u; t < TW; t++) {
    let ow = seg * TW + t;
    if (ow >= p.OW) { break; }
    for (var v = 0u; v < V; v++) {
      for (var i = 0u; i < 4u; i++) {
        let n = (grp * V + v) * 4u + i;
        if (n < p.NO) { dst[(b * p.NO + n) * OS + rowOut + ow] = T(acc[t * V + v][i]); }
      }
    }
  }
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  convRows(wid, lid.x);
}

@compute @workgroup_size(WG)
fn backward_input(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  convRows(wid, lid.x);
}

// src = x [B, CR, ID, IH, IW], grad = dy [B, NO, OD, OH, OW], partial = [chunks, NO, CR·KK].
// Lane index: (c, kd) fastest, then the channel group, then the chunk.
@compute @workgroup_size(WG)
fn backward_weight(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let u = linearId(wid, nwg, lid.x);
  let perChunk = p.CR * KS * p.NG;
  if (u >= perChunk * p.chunks) { return; }
  let ckd = u % (p.CR * KS);
  let grp = (u / (p.CR * KS)) % p.NG;
  let chunk = u / perChunk;
  let c = ckd / KS;
  let kd = ckd % KS;
  let IS = p.ID * p.IH * p.IW;
  let OS = p.OD * p.OH * p.OW;

  var acc: array<vec4<f32>, KS * KS * V>;
  let r0 = chunk * p.rowsPerChunk;
  let r1 = min(r0 + p.rowsPerChunk, p.rows);
  for (var row = r0; row < r1; row++) {
    let oh = row % p.OH;
    let od = (row / p.OH) % p.OD;
    let b = row / (p.OH * p.OD);
    let d = i32(od + kd) - p.PAD;
    if (d < 0 || d >= i32(p.ID)) { continue; }
    let plane = (b * p.CR + c) * IS + u32(d) * p.IH * p.IW;
    var hOk: array<bool, KS>;
    var line: array<u32, KS>;
    // Sliding windows: xw[kh·KS + kw] is x at (d, oh + kh − P, w + kw − P) for the current w.
    var xw: array<f32, KS * KS>;
    for (var kh = 0u; kh < KS; kh++) {
      let h = i32(oh + kh) - p.PAD;
      hOk[kh] = h >= 0 && h < i32(p.IH);
      line[kh] = plane + select(0u, u32(h) * p.IW, hOk[kh]);
      for (var kw = 1u; kw < KS; kw++) {
        let w = i32(kw) - 1 - p.PAD;
        let ok = hOk[kh] && w >= 0 && w < i32(p.IW);
        xw[kh * KS + kw] = select(0.0, f32(src[select(0u, line[kh] + u32(w), ok)]), ok);
      }
    }
    let g0 = (b * p.NO + grp * V * 4u) * OS + (od * p.OH + oh) * p.OW;
    for (var ow = 0u; ow < p.OW; ow++) {
      let wNew = i32(ow + KS - 1u) - p.PAD;
      for (var kh = 0u; kh < KS; kh++) {
        for (var kw = 0u; kw + 1u < KS; kw++) { xw[kh * KS + kw] = xw[kh * KS + kw + 1u]; }
        let ok = hOk[kh] && wNew >= 0 && wNew < i32(p.IW);
        xw[kh * KS + KS - 1u] = select(0.0, f32(src[select(0u, line[kh] + u32(wNew), ok)]), ok);
      }
      for (var v = 0u; v < V; v++) {
        var g: vec4<f32>;
        for (var i = 0u; i < 4u; i++) {
          let n = (grp * V + v) * 4u + i;
          g[i] = select(0.0, f32(grad[select(0u, g0 + (v * 4u + i) * OS + ow, n < p.NO)]), n < p.NO);
        }
        for (var t = 0u; t < KS * KS; t++) { acc[t * V + v] = fma(vec4<f32>(xw[t]), g, acc[t * V + v]); }
      }
    }
  }

  let J = p.CR * KK;
  let out0 = chunk * p.NO * J + c * KK + kd * KS * KS;
  for (var v = 0u; v < V; v++) {
    for (var i = 0u; i < 4u; i++) {
      let n = (grp * V + v) * 4u + i;
      if (n >= p.NO) { continue; }
      for (var t = 0u; t < KS * KS; t++) { partial[out0 + n * J + t] = acc[t * V + v][i]; }
    }
  }
}

// dw[e] = Σ_chunk parts[chunk, e], chunks added in order; one invocation per element.
@compute @workgroup_size(WG)
fn sum_chunks(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let e = linearId(wid, nwg, lid.x);
  if (e >= p.total) { return; }
  var s = 0.0;
  for (var c = 0u; c < p.chunks; c++) { s += parts[c * p.total + e]; }
  dw[e] = T(s);
}
