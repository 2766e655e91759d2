// 3D convolution, stride 1, zero padding, no bias, channels-first, as implicit GEMMs with register
// blocks and no workgroup memory (one kernel for CPU adapters and GPUs alike).
//
//   x: [B, Ci, D, H, W]   weight: [Co, Ci, KS, KS, KS] (PyTorch)   y: [B, Co, OD, OH, OW]
//   y[b, n, o] = Σ_{c, tap} x[b, c, o + tap − PAD] · weight[n, c, tap]
//
// forward / backward_input: C[M = B·OD·OH·OW, N = NO] = A[M, K = CR·KK] · Wᵀ, where row m of A is
// the zero-padded KS³ neighbourhood of output position m in `src`, gathered on the fly. The K loop
// runs over taps (outer) and reduction channels (inner): a tap's bounds checks and offsets are
// worked out once and reused for every channel. An invocation owns TM output positions
// (m = tile·WG·TM + r·WG + lane, so neighbouring lanes read neighbouring words of `src`) and the TN
// output channels of its workgroup, which every lane shares: the weight loads have one address
// across the SIMD lanes (a scalar load and a broadcast on CPU adapters, a broadcast on GPUs) and
// each gathered input value is reused TN times.
//   forward:        src = x,  NO = Co, CR = Ci, PAD = P,          weight[n, c, tap]
//   backward_input: src = dy, NO = Ci, CR = Co, PAD = KS − 1 − P, weight[c, n, KK − 1 − tap]
//                   (dx is the convolution of dy with the flipped, transposed kernel)
// backward_weight: dW[NO = Co, J = CR·KK] = dyᵀ[Co, M] · A[M, J], A gathered from x as above. An
// invocation owns TJ columns (ci, tap) (j = tile·WG·TJ + t·WG + lane) and the TC output channels of
// its workgroup; each workgroup walks one chunk of M in order and writes its partial sums to
// partial[chunk]. sum_chunks then adds the chunks in order: no atomics, bitwise deterministic.
// Accumulates in f32.

alias T = f32;

const KS: u32 = 3u;   // kernel size (KS × KS × KS)
const WG: u32 = 64u;  // invocations per workgroup
const TM: u32 = 4u;   // output positions per invocation (forward, backward_input)
const TN: u32 = 8u;   // output channels per workgroup (forward, backward_input)
const TJ: u32 = 4u;   // (ci, tap) columns of dW per invocation (backward_weight)
const TC: u32 = 8u;   // output channels per workgroup (backward_weight)
const KK: u32 = KS * KS * KS;

struct Params {
  CR: u32,                     // channels summed over
  NO: u32,                     // channels produced
  ID: u32, IH: u32, IW: u32,   // volume of src (x, or dy for backward_input)
  OD: u32, OH: u32, OW: u32,   // volume of the output positions
  PAD: i32,                    // zero padding before each spatial axis
  M: u32,                      // B · OD · OH · OW
  mChunk: u32,                 // positions per chunk of M (backward_weight)
  chunks: u32,                 // number of chunks (sum_chunks)
  total: u32,                  // elements of dW (sum_chunks)
  t0x: u32, t0y: u32, t0z: u32,  // first tile of this dispatch per grid dimension (split grids)
  // forward / backward_input, where tensors over the binding limit are bound in pieces: element
  // offsets of the piece inside each bound range, per-batch strides, weight strides (n, c), and
  // whether the piece adds to dst (a later block of reduction channels) or writes it.
  srcOff: u32, srcBatch: u32,
  dstOff: u32, dstBatch: u32,
  wOff: u32, wStepN: u32, wStepC: u32,
  accumulate: u32,
  gradOff: u32, gradBatch: u32,  // backward_weight: dy's piece offset and per-batch stride
}

@group(0) @binding(0) var<storage, read> src: array<T>;
@group(0) @binding(1) var<storage, read> weight: array<T>;
@group(0) @binding(2) var<storage, read_write> dst: array<T>;
@group(0) @binding(3) var<storage, read> grad: array<T>;
@group(0) @binding(4) var<storage, read_write> partial: array<f32>;
@group(0) @binding(5) var<storage, read> parts: array<f32>;
@group(0) @binding(6) var<storage, read_write> dw: array<T>;
@group(0) @binding(7) var<uniform> p: Params;

fn conv(wid: vec3u, lane: u32, flip: bool) {
  let IS = p.ID * p.IH * p.IW;
  let OS = p.OD * p.OH * p.OW;
  let m0 = (wid.x + p.t0x) * WG * TM + lane;
  let n0 = (wid.y + p.t0y) * TN;

  // Output positions of this invocation. Positions past the end are clamped (computed, not stored).
  var od: array<i32, TM>;
  var oh: array<i32, TM>;
  var ow: array<i32, TM>;
  var base: array<u32, TM>;
  for (var r = 0u; r < TM; r++) {
    let m = min(m0 + r * WG, p.M - 1u);
    let b = m / OS;
    let s = m % OS;
    ow[r] = i32(s % p.OW);
    oh[r] = i32((s / p.OW) % p.OH);
    od[r] = i32(s / (p.OW * p.OH));
    base[r] = p.srcOff + b * p.srcBatch;
  }
  // Weight element (n, c, tap) of this GEMM: forward weight[n, c, tap], backward_input
  // weight[c, n, KK − 1 − tap] (the strides say which).
  var wn: array<u32, TN>;
  for (var j = 0u; j < TN; j++) { wn[j] = p.wOff + min(n0 + j, p.NO - 1u) * p.wStepN; }

  var acc: array<array<f32, TN>, TM>;
  for (var tap = 0u; tap < KK; tap++) {
    let kd = i32(tap / (KS * KS)) - p.PAD;
    let kh = i32((tap / KS) % KS) - p.PAD;
    let kw = i32(tap % KS) - p.PAD;
    var off: array<u32, TM>;
    var ok: array<bool, TM>;
    for (var r = 0u; r < TM; r++) {
      let d = od[r] + kd;
      let h = oh[r] + kh;
      let w = ow[r] + kw;
      ok[r] = d >= 0 && d < i32(p.ID) && h >= 0 && h < i32(p.IH) && w >= 0 && w < i32(p.IW);
      // Out-of-volume taps read channel c of batch 0 at position 0 (a valid address) and use 0.
      off[r] = select(0u, base[r] + u32((d * i32(p.IH) + h) * i32(p.IW) + w), ok[r]);
    }
    let wt = select(tap, KK - 1u - tap, flip);
    for (var c = 0u; c < p.CR; c++) {
      var a: array<f32, TM>;
      for (var r = 0u; r < TM; r++) { a[r] = select(0.0, f32(src[off[r] + c * IS]), ok[r]); }
      let wc = c * p.wStepC + wt;
      for (var j = 0u; j < TN; j++) {
        let wv = f32(weight[wn[j] + wc]);
        for (var r = 0u; r < TM; r++) { acc[r][j] = fma(a[r], wv, acc[r][j]); }
      }
    }
  }

  for (var r = 0u; r < TM; r++) {
    let m = m0 + r * WG;
    if (m >= p.M) { continue; }
    let b = m / OS;
    let s = m % OS;
    for (var j = 0u; j < TN; j++) {
      let n = n0 + j;
      if (n >= p.NO) { continue; }
      let i = p.dstOff + b * p.dstBatch + n * OS + s;
      if (p.accumulate != 0u) { dst[i] = T(f32(dst[i]) + acc[r][j]); } else { dst[i] = T(acc[r][j]); }
    }
  }
}

// Few output positions (the /32 maps of a 96³ crop are 3³; of a 32³ crop 1³): the wide GEMM above
// would leave most lanes idle and load every weight once per lane. Here the lanes run along the
// output channels and a workgroup shares one position, so a tap that falls outside the volume is
// skipped by the whole workgroup (26 of 27 at 1³), and every weight is loaded once.
fn convNarrow(wid: vec3u, lane: u32, flip: bool) {
  let IS = p.ID * p.IH * p.IW;
  let OS = p.OD * p.OH * p.OW;
  let m = wid.x + p.t0x;
  let n = (wid.y + p.t0y) * WG + lane;
  let b = m / OS;
  let s = m % OS;
  let ow = i32(s % p.OW);
  let oh = i32((s / p.OW) % p.OH);
  let od = i32(s / (p.OW * p.OH));
  let base = p.srcOff + b * p.srcBatch;
  let wRow = p.wOff + min(n, p.NO - 1u) * p.wStepN;
  var acc = 0.0;
  for (var tap = 0u; tap < KK; tap++) {
    let d = od + i32(tap / (KS * KS)) - p.PAD;
    let h = oh + i32((tap / KS) % KS) - p.PAD;
    let w = ow + i32(tap % KS) - p.PAD;
    if (d < 0 || d >= i32(p.ID) || h < 0 || h >= i32(p.IH) || w < 0 || w >= i32(p.IW)) { continue; }
    let off = base + u32((d * i32(p.IH) + h) * i32(p.IW) + w);
    let wt = wRow + select(tap, KK - 1u - tap, flip);
    for (var c = 0u; c < p.CR; c++) {
      acc = fma(f32(src[off + c * IS]), f32(weight[wt + c * p.wStepC]), acc);
    }
  }
  if (n >= p.NO) { return; }
  let i = p.dstOff + b * p.dstBatch + n * OS + s;
  if (p.accumulate != 0u) { dst[i] = T(f32(dst[i]) + acc); } else { dst[i] = T(acc); }
}

@compute @workgroup_size(WG)
fn forward_narrow(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  convNarrow(wid, lid.x, false);
}

@compute @workgroup_size(WG)
fn backward_input_narrow(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  convNarrow(wid, lid.x, true);
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  conv(wid, lid.x, false);
}

@compute @workgroup_size(WG)
fn backward_input(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  conv(wid, lid.x, true);
}

// src = x [B, CR, ID, IH, IW], grad = dy [B, NO, OD, OH, OW], partial = [chunks, NO, CR·KK].
@compute @workgroup_size(WG)
fn backward_weight(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let IS = p.ID * p.IH * p.IW;
  let OS = p.OD * p.OH * p.OW;
  let J = p.CR * KK;
  let j0 = (wid.x + p.t0x) * WG * TJ + lid.x;
  let c0 = (wid.y + p.t0y) * TC;
  let chunk = wid.z + p.t0z;

  // Columns (ci, tap) of this invocation; past the end they are clamped (computed, not stored).
  var kd: array<i32, TJ>;
  var kh: array<i32, TJ>;
  var kw: array<i32, TJ>;
  var cOff: array<u32, TJ>;
  for (var t = 0u; t < TJ; t++) {
    let j = min(j0 + t * WG, J - 1u);
    let tap = j % KK;
    kd[t] = i32(tap / (KS * KS)) - p.PAD;
    kh[t] = i32((tap / KS) % KS) - p.PAD;
    kw[t] = i32(tap % KS) - p.PAD;
    cOff[t] = (j / KK) * IS;
  }
  var gn: array<u32, TC>;
  for (var i = 0u; i < TC; i++) { gn[i] = min(c0 + i, p.NO - 1u) * OS; }

  var acc: array<array<f32, TJ>, TC>;
  let mStart = chunk * p.mChunk;
  let mEnd = min(mStart + p.mChunk, p.M);
  if (mStart < mEnd) {
    // Walk the chunk's positions in order, carrying (b, d, h, w) instead of dividing.
    var b = mStart / OS;
    let s0 = mStart % OS;
    var w = i32(s0 % p.OW);
    var h = i32((s0 / p.OW) % p.OH);
    var d = i32(s0 / (p.OW * p.OH));
    var s = s0;
    for (var m = mStart; m < mEnd; m++) {
      let xb = p.srcOff + b * p.srcBatch;
      var a: array<f32, TJ>;
      for (var t = 0u; t < TJ; t++) {
        let dd = d + kd[t];
        let hh = h + kh[t];
        let ww = w + kw[t];
        let ok = dd >= 0 && dd < i32(p.ID) && hh >= 0 && hh < i32(p.IH) && ww >= 0 && ww < i32(p.IW);
        let idx = select(0u, xb + cOff[t] + u32((dd * i32(p.IH) + hh) * i32(p.IW) + ww), ok);
        a[t] = select(0.0, f32(src[idx]), ok);
      }
      let gb = p.gradOff + b * p.gradBatch + s;
      for (var i = 0u; i < TC; i++) {
        let g = f32(grad[gb + gn[i]]);
        for (var t = 0u; t < TJ; t++) { acc[i][t] = fma(g, a[t], acc[i][t]); }
      }
      s++;
      w++;
      if (w == i32(p.OW)) {
        w = 0;
        h++;
        if (h == i32(p.OH)) {
          h = 0;
          d++;
          if (d == i32(p.OD)) { d = 0; b++; s = 0u; }
        }
      }
    }
  }

  let out0 = chunk * p.NO * J;
  for (var i = 0u; i < TC; i++) {
    let n = c0 + i;
    if (n >= p.NO) { continue; }
    for (var t = 0u; t < TJ; t++) {
      let j = j0 + t * WG;
      if (j < J) { partial[out0 + n * J + j] = acc[i][t]; }
    }
  }
}

// dw[e] = Σ_chunk parts[chunk, e], chunks added in order. One invocation per element on an x·y·z
// grid; t0x is the first element of this dispatch.
@compute @workgroup_size(WG)
fn sum_chunks(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let e = p.t0x + ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lid.x;
  if (e >= p.total) { return; }
  var s = 0.0;
  for (var c = 0u; c < p.chunks; c++) { s += parts[c * p.total + e]; }
  dw[e] = T(s);
}
