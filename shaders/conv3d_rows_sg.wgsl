// The rows convolution kernels of conv3d_rows.wgsl for CPU adapters with subgroups of SG lanes.
// On such an adapter (lavapipe) a storage load costs a loop over the SIMD lanes, one load and two
// branches each, even where every lane reads the same address; a subgroup shuffle with a constant
// lane costs a register move. So a value every lane of a subgroup needs is loaded once by one lane
// and handed to the others:
//   forward / backward_input: the KS·4V weights of one (c, kd, kh) row for the lanes' channel group
//     (all lanes of a workgroup share the group), ⌈KS·4V / SG⌉ loads per lane instead of KS·4V.
//   backward_weight: the lanes of a subgroup share a chunk of output rows and a channel group and
//     differ in (c, kd); SG positions of dy at a time are loaded one per lane (4V loads) and handed
//     round, instead of 4V loads per position.
// Everything else (layouts, wT from conv3d_rows.wgsl's arrange_weight, partial sums and their
// fixed-order sum there) is as in conv3d_rows.wgsl. Control flow stays uniform within a subgroup
// around the shuffles: lanes past the end compute on clamped indices and store nothing.

enable subgroups;
// Shuffles run where lanes of one subgroup agree (see above); the analysis cannot see that.
diagnostic(off, subgroup_uniformity);

alias T = f32;

const KS: u32 = 3u;   // kernel size
const WG: u32 = 64u;  // invocations per workgroup
const TW: u32 = 8u;   // outputs along W per lane (forward, backward_input)
const V: u32 = 3u;    // vec4 groups of output channels per lane (4·V channels)
const SG: u32 = 8u;   // subgroup size
const KK: u32 = KS * KS * KS;
const RW: u32 = TW + KS - 1u;
const NW: u32 = KS * 4u * V;            // weights of one (c, kd, kh) row of a channel group
const NWL: u32 = (NW + SG - 1u) / SG;   // of them loaded per lane

struct Params {
  CR: u32,
  NO: u32,
  NG: u32,
  ID: u32, IH: u32, IW: u32,
  OD: u32, OH: u32, OW: u32,
  PAD: i32,
  rows: u32,
  segs: u32,
  t0x: u32,
  total: u32,
  wStepN: u32, wStepC: u32,
  flip: u32,
  chunks: u32,
  rowsPerChunk: u32,
}

@group(0) @binding(0) var<storage, read> src: array<T>;
@group(0) @binding(1) var<storage, read> wf: array<T>;       // wT [CR, KK, NG·4V] (arrange_weight)
@group(0) @binding(2) var<storage, read_write> dst: array<T>;
@group(0) @binding(3) var<storage, read> grad: array<T>;
@group(0) @binding(4) var<storage, read_write> partial: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

fn convRowsSg(wid: vec3u, lane: u32, sg: u32) {
  let units = p.rows * p.segs;
  let uRaw = (wid.x + p.t0x) * WG + lane;
  let u = min(uRaw, units - 1u);
  let grp = wid.y;
  let IS = p.ID * p.IH * p.IW;
  let OS = p.OD * p.OH * p.OW;
  let seg = u % p.segs;
  let row = u / p.segs;
  let oh = row % p.OH;
  let od = (row / p.OH) % p.OD;
  let b = row / (p.OH * p.OD);
  let ow0 = i32(seg * TW) - p.PAD;
  let NQ4 = p.NG * V * 4u;

  var acc: array<vec4<f32>, TW * V>;
  for (var c = 0u; c < p.CR; c++) {
    let plane = (b * p.CR + c) * IS;
    for (var kd = 0u; kd < KS; kd++) {
      let d = i32(od + kd) - p.PAD;
      let dOk = d >= 0 && d < i32(p.ID);
      for (var kh = 0u; kh < KS; kh++) {
        let h = i32(oh + kh) - p.PAD;
        let ok = dOk && h >= 0 && h < i32(p.IH);
        let line = plane + select(0u, u32(d * i32(p.IH) + h) * p.IW, ok);
        // Lane sg holds weights sg, sg + SG, … of this row: element e = kw·4V + j is wT[c, tap, grp·4V + j].
        let wrow = ((c * KS + kd) * KS + kh) * KS * NQ4 + grp * 4u * V;
        var wl: array<f32, NWL>;
        for (var i = 0u; i < NWL; i++) {
          let e = min(i * SG + sg, NW - 1u);
          wl[i] = f32(wf[wrow + (e / (4u * V)) * NQ4 + e % (4u * V)]);
        }
        var a: array<f32, RW>;
        for (var i = 0u; i < RW; i++) {
          let w = ow0 + i32(i);
          let okw = ok && w >= 0 && w < i32(p.IW);
          a[i] = select(0.0, f32(src[select(0u, line + u32(w), okw)]), okw);
        }
        for (var kw = 0u; kw < KS; kw++) {
          for (var v = 0u; v < V; v++) {
            let e = (kw * V + v) * 4u;
            let wq = vec4<f32>(
              subgroupShuffle(wl[e / SG], e % SG),
              subgroupShuffle(wl[(e + 1u) / SG], (e + 1u) % SG),
              subgroupShuffle(wl[(e + 2u) / SG], (e + 2u) % SG),
              subgroupShuffle(wl[(e + 3u) / SG], (e + 3u) % SG));
            for (var t = 0u; t < TW; t++) { acc[t * V + v] = fma(vec4<f32>(a[t + kw]), wq, acc[t * V + v]); }
          }
        }
      }
    }
  }

  if (uRaw >= units) { return; }
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
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32, @builtin(subgroup_invocation_id) sg: u32) {
  convRowsSg(wid, lane, sg);
}

@compute @workgroup_size(WG)
fn backward_input(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32, @builtin(subgroup_invocation_id) sg: u32) {
  convRowsSg(wid, lane, sg);
}

// src = x [B, CR, ID, IH, IW], grad = dy [B, NO, OD, OH, OW], partial = [chunks, NO, CR·KK].
// Lane index: (c, kd) fastest, padded to whole subgroups, then the channel group, then the chunk.
@compute @workgroup_size(WG)
fn backward_weight(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lane: u32, @builtin(subgroup_invocation_id) sg: u32) {
  let L = (p.CR * KS + SG - 1u) / SG * SG;
  let uRaw = p.t0x + ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lane;
  let u = min(uRaw, L * p.NG * p.chunks - 1u);
  let ckdRaw = u % L;
  let ckd = min(ckdRaw, p.CR * KS - 1u);
  let grp = (u / L) % p.NG;
  let chunk = u / (L * p.NG);
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
    let dOk = d >= 0 && d < i32(p.ID);
    let plane = (b * p.CR + c) * IS + select(0u, u32(d), dOk) * p.IH * p.IW;
    var hOk: array<bool, KS>;
    var line: array<u32, KS>;
    // Sliding windows: xw[kh·KS + kw] is x at (d, oh + kh − P, w + kw − P) for the current w.
    var xw: array<f32, KS * KS>;
    for (var kh = 0u; kh < KS; kh++) {
      let h = i32(oh + kh) - p.PAD;
      hOk[kh] = dOk && h >= 0 && h < i32(p.IH);
      line[kh] = plane + select(0u, u32(h) * p.IW, hOk[kh]);
      for (var kw = 1u; kw < KS; kw++) {
        let w = i32(kw) - 1 - p.PAD;
        let ok = hOk[kh] && w >= 0 && w < i32(p.IW);
        xw[kh * KS + kw] = select(0.0, f32(src[select(0u, line[kh] + u32(w), ok)]), ok);
      }
    }
    let g0 = (b * p.NO + grp * V * 4u) * OS + (od * p.OH + oh) * p.OW;
    for (var w0 = 0u; w0 < p.OW; w0 += SG) {
      // Lane sg holds dy at w0 + sg for the group's 4V channels (0 past the row's end).
      let wj = w0 + sg;
      var gl: array<f32, 4u * V>;
      for (var j = 0u; j < 4u * V; j++) {
        let ok = wj < p.OW && grp * V * 4u + j < p.NO;
        gl[j] = select(0.0, f32(grad[select(0u, g0 + j * OS + wj, ok)]), ok);
      }
      for (var k = 0u; k < SG; k++) {
        let wNew = i32(w0 + k + KS - 1u) - p.PAD;
        for (var kh = 0u; kh < KS; kh++) {
          for (var kw = 0u; kw + 1u < KS; kw++) { xw[kh * KS + kw] = xw[kh * KS + kw + 1u]; }
          let ok = hOk[kh] && wNew >= 0 && wNew < i32(p.IW);
          xw[kh * KS + KS - 1u] = select(0.0, f32(src[select(0u, line[kh] + u32(wNew), ok)]), ok);
        }
        for (var v = 0u; v < V; v++) {
          let g = vec4<f32>(subgroupShuffle(gl[v * 4u], k), subgroupShuffle(gl[v * 4u + 1u], k), subgroupShuffle(gl[v * 4u + 2u], k), subgroupShuffle(gl[v * 4u + 3u], k));
          for (var t = 0u; t < KS * KS; t++) { acc[t * V + v] = fma(vec4<f32>(xw[t]), g, acc[t * V + v]); }
        }
      }
    }
  }

  if (uRaw >= L * p.NG * p.chunks || ckdRaw >= p.CR * KS) { return; }
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
