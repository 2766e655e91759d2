/**
 * Float64 CPU reference backward passes (vector–Jacobian products) for the ops in ops.ts.
 *
 * Every function takes the forward inputs (or output, where noted) plus the upstream gradient
 * `g` (same shape as the forward output) and returns gradients shaped like the forward inputs.
 */
import { type Arr, arr, shapesEqual, strides } from './array';
import {
  type MatmulOpts,
  broadcastTo,
  gemmAcc,
  inversePerm,
  layerNormStats,
  matmulGeom,
  normalCdf,
  normalPdf,
  normalizeAxes,
  permute,
  reducedShape,
  reductionCount,
  scale,
  sliceView,
  sumTo,
  viewOffsets,
} from './ops';

function expectShape(g: Arr, shape: readonly number[], what: string): void {
  if (!shapesEqual(g.shape, shape)) throw new Error(`${what}: gradient shape [${g.shape.join(',')}] ≠ expected [${shape.join(',')}]`);
}

// ---------------------------------------------------------------------------------------------
// matmul
// ---------------------------------------------------------------------------------------------

/**
 * VJP of matmul(a, b, opts). With C = op(A)·op(B) (+ bias):
 *   dA = G·Bᵀ, dB = Aᵀ·G, dbias = Σ_{batch, rows} G,
 * written back in a's / b's own (possibly transposed) layout, and summed over any batch dims
 * that were broadcast (e.g. a 2-D b shared across the batch gets the batch-summed db).
 * `dbias` is present iff opts.bias was given.
 */
export function matmulBackward(a: Arr, b: Arr, gOut: Arr, opts: MatmulOpts = {}): { da: Arr; db: Arr; dbias?: Arr } {
  const geo = matmulGeom(a.shape, b.shape, opts);
  const { M, N, K, sAm, sAk, sBk, sBn } = geo;
  expectShape(gOut, [...geo.outBatch, M, N], 'matmulBackward');
  const da = arr(a.shape);
  const db = arr(b.shape);
  const G = gOut.data;
  for (let bi = 0; bi < geo.aOffs.length; bi++) {
    const gOff = bi * M * N;
    const aOff = geo.aOffs[bi]!;
    const bOff = geo.bOffs[bi]!;
    // dA[m,k] += Σ_n G[m,n]·B[k,n]   (B read transposed: index [n,k] → strides (sBn, sBk))
    gemmAcc(M, K, N, G, gOff, N, 1, b.data, bOff, sBn, sBk, da.data, aOff, sAm, sAk);
    // dB[k,n] += Σ_m A[m,k]·G[m,n]   (A read transposed: index [k,m] → strides (sAk, sAm))
    gemmAcc(K, N, M, a.data, aOff, sAk, sAm, G, gOff, N, 1, db.data, bOff, sBk, sBn);
  }
  if (!opts.bias) return { da, db };
  const dbias = arr([N]);
  for (let r = 0; r < G.length; r += N) for (let n = 0; n < N; n++) dbias.data[n] = dbias.data[n]! + G[r + n]!;
  return { da, db, dbias };
}

// ---------------------------------------------------------------------------------------------
// Elementwise
// ---------------------------------------------------------------------------------------------

/**
 * Gradient of a broadcast: sums g (shape = broadcast output) over every axis that was stretched
 * or prepended, returning an array of `inputShape`. Use for add/sub (and inside mul).
 */
export function broadcastBackward(g: Arr, inputShape: readonly number[]): Arr {
  return sumTo(g, inputShape);
}

/** VJP of add(a, b). */
export function addBackward(aShape: readonly number[], bShape: readonly number[], g: Arr): { da: Arr; db: Arr } {
  return { da: broadcastBackward(g, aShape), db: broadcastBackward(g, bShape) };
}

/** VJP of sub(a, b). */
export function subBackward(aShape: readonly number[], bShape: readonly number[], g: Arr): { da: Arr; db: Arr } {
  return { da: broadcastBackward(g, aShape), db: scale(broadcastBackward(g, bShape), -1) };
}

/** VJP of mul(a, b) with broadcasting: da = Σ_bcast g⊙b, db = Σ_bcast g⊙a. */
export function mulBackward(a: Arr, b: Arr, g: Arr): { da: Arr; db: Arr } {
  const shape = g.shape;
  const ea = broadcastTo(a, shape);
  const eb = broadcastTo(b, shape);
  for (let i = 0; i < ea.data.length; i++) {
    const gi = g.data[i]!;
    const av = ea.data[i]!;
    ea.data[i] = gi * eb.data[i]!; // now g⊙b
    eb.data[i] = gi * av; // now g⊙a
  }
  return { da: broadcastBackward(ea, a.shape), db: broadcastBackward(eb, b.shape) };
}

/** VJP of scale(a, s) w.r.t. a. */
export function scaleBackward(g: Arr, s: number): Arr {
  return scale(g, s);
}

/** VJP of exact GELU: g·(Φ(x) + x·φ(x)). */
export function geluBackward(x: Arr, g: Arr): Arr {
  expectShape(g, x.shape, 'geluBackward');
  const out = arr(x.shape);
  for (let i = 0; i < out.data.length; i++) {
    const v = x.data[i]!;
    out.data[i] = g.data[i]! * (normalCdf(v) + v * normalPdf(v));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Normalisation / softmax
// ---------------------------------------------------------------------------------------------

/**
 * VJP of layerNorm(x, w, b, eps) over the last axis. With x̂ = (x − μ)·rstd and ĝ = g⊙w (or g):
 *   dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂)),  dw = Σ_rows g⊙x̂,  db = Σ_rows g.
 * dw / db are returned iff w / b are non-null.
 */
export function layerNormBackward(
  x: Arr, w: Arr | null, b: Arr | null, g: Arr, eps = 1e-5,
): { dx: Arr; dw?: Arr; db?: Arr } {
  expectShape(g, x.shape, 'layerNormBackward');
  const C = x.shape[x.shape.length - 1]!;
  const { mean, rstd } = layerNormStats(x, eps);
  const dx = arr(x.shape);
  const dw = w ? arr([C]) : null;
  const db = b ? arr([C]) : null;
  const gh = new Float64Array(C);
  const xh = new Float64Array(C);
  for (let r = 0; r < mean.length; r++) {
    const o = r * C;
    const mu = mean[r]!;
    const rs = rstd[r]!;
    let sumG = 0;
    let sumGX = 0;
    for (let c = 0; c < C; c++) {
      const gi = g.data[o + c]!;
      const xhat = (x.data[o + c]! - mu) * rs;
      const ghat = w ? gi * w.data[c]! : gi;
      xh[c] = xhat;
      gh[c] = ghat;
      sumG += ghat;
      sumGX += ghat * xhat;
      if (dw) dw.data[c] = dw.data[c]! + gi * xhat;
      if (db) db.data[c] = db.data[c]! + gi;
    }
    const mG = sumG / C;
    const mGX = sumGX / C;
    for (let c = 0; c < C; c++) dx.data[o + c] = rs * (gh[c]! - mG - xh[c]! * mGX);
  }
  const res: { dx: Arr; dw?: Arr; db?: Arr } = { dx };
  if (dw) res.dw = dw;
  if (db) res.db = db;
  return res;
}

/** VJP of softmax given its OUTPUT y: dx = y⊙(g − Σ_c g⊙y) per row. */
export function softmaxBackward(y: Arr, g: Arr): Arr {
  expectShape(g, y.shape, 'softmaxBackward');
  const C = y.shape[y.shape.length - 1]!;
  const dx = arr(y.shape);
  for (let o = 0; o < y.data.length; o += C) {
    let dot = 0;
    for (let c = 0; c < C; c++) dot += g.data[o + c]! * y.data[o + c]!;
    for (let c = 0; c < C; c++) dx.data[o + c] = y.data[o + c]! * (g.data[o + c]! - dot);
  }
  return dx;
}

/** VJP of logSoftmax given its OUTPUT y: dx = g − exp(y)·Σ_c g per row. */
export function logSoftmaxBackward(y: Arr, g: Arr): Arr {
  expectShape(g, y.shape, 'logSoftmaxBackward');
  const C = y.shape[y.shape.length - 1]!;
  const dx = arr(y.shape);
  for (let o = 0; o < y.data.length; o += C) {
    let s = 0;
    for (let c = 0; c < C; c++) s += g.data[o + c]!;
    for (let c = 0; c < C; c++) dx.data[o + c] = g.data[o + c]! - Math.exp(y.data[o + c]!) * s;
  }
  return dx;
}

// ---------------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------------

/** VJP of sum(x, axes, keepDims): g broadcast back to inputShape. */
export function sumBackward(g: Arr, inputShape: readonly number[], axes: number[], keepDims = false): Arr {
  expectShape(g, reducedShape(inputShape, axes, keepDims), 'sumBackward');
  const kept = reducedShape(inputShape, axes, true);
  return broadcastTo({ data: g.data, shape: kept }, inputShape);
}

/** VJP of mean(x, axes, keepDims): g broadcast back to inputShape, divided by the reduced count. */
export function meanBackward(g: Arr, inputShape: readonly number[], axes: number[], keepDims = false): Arr {
  normalizeAxes(axes, inputShape.length); // validates
  const dx = sumBackward(g, inputShape, axes, keepDims);
  const cnt = reductionCount(inputShape, axes);
  for (let i = 0; i < dx.data.length; i++) dx.data[i] = dx.data[i]! / cnt;
  return dx;
}

// ---------------------------------------------------------------------------------------------
// Shape ops
// ---------------------------------------------------------------------------------------------

/** VJP of reshape: the same data in the input's shape. */
export function reshapeBackward(g: Arr, inputShape: readonly number[]): Arr {
  return arr(inputShape, g.data);
}

/** VJP of permute(x, perm): permute g by the inverse permutation. */
export function permuteBackward(g: Arr, perm: readonly number[]): Arr {
  return permute(g, inversePerm(perm));
}

/** VJP of slice(x, starts, ends): g scattered into zeros of inputShape. */
export function sliceBackward(g: Arr, inputShape: readonly number[], starts: readonly number[], ends: readonly number[]): Arr {
  const v = sliceView(inputShape, starts, ends);
  expectShape(g, v.outShape, 'sliceBackward');
  const dx = arr(inputShape);
  const offs = viewOffsets(v.outShape, v.offset, v.st);
  for (let i = 0; i < offs.length; i++) dx.data[offs[i]!] = g.data[i]!;
  return dx;
}

/** VJP of concat(xs, axis): the pieces of g along `axis`, one per input shape. */
export function concatBackward(g: Arr, inputShapes: readonly (readonly number[])[], axis: number): Arr[] {
  const r = g.shape.length;
  const ax = axis < 0 ? axis + r : axis;
  if (ax < 0 || ax >= r) throw new Error(`concatBackward: axis ${axis} out of range`);
  const gst = strides(g.shape);
  let start = 0;
  const out: Arr[] = [];
  for (const s of inputShapes) {
    const piece = arr(s);
    const offs = viewOffsets(s, start * gst[ax]!, gst);
    for (let i = 0; i < offs.length; i++) piece.data[i] = g.data[offs[i]!]!;
    out.push(piece);
    start += s[ax]!;
  }
  if (start !== g.shape[ax]) throw new Error('concatBackward: input shapes do not add up to g');
  return out;
}

// ---------------------------------------------------------------------------------------------
// Losses
// ---------------------------------------------------------------------------------------------

/**
 * VJP of crossEntropySoft(logits, targets) = (1/N) Σ_n −Σ_c t·logSoftmax(logits), with scalar
 * upstream gradient g:
 *   dlogits[n,c] = (softmax(logits)[n,c]·Σ_c' t[n,c'] − t[n,c])·g/N   (targets need not sum to 1)
 *   dtargets[n,c] = −logSoftmax(logits)[n,c]·g/N
 */
export function crossEntropySoftBackward(logits: Arr, targets: Arr, g: number): { dlogits: Arr; dtargets: Arr } {
  const [N, C] = logits.shape as [number, number];
  if (logits.shape.length !== 2 || !shapesEqual(logits.shape, targets.shape)) throw new Error('crossEntropySoftBackward: need matching [N,C]');
  const k = N === 0 ? 0 : g / N;
  const dlogits = arr(logits.shape);
  const dtargets = arr(logits.shape);
  for (let o = 0; o < logits.data.length; o += C) {
    let mx = -Infinity;
    for (let c = 0; c < C; c++) mx = Math.max(mx, logits.data[o + c]!);
    let s = 0;
    let tSum = 0;
    for (let c = 0; c < C; c++) {
      s += Math.exp(logits.data[o + c]! - mx);
      tSum += targets.data[o + c]!;
    }
    const lse = mx + Math.log(s);
    for (let c = 0; c < C; c++) {
      const ls = logits.data[o + c]! - lse;
      dlogits.data[o + c] = (Math.exp(ls) * tSum - targets.data[o + c]!) * k;
      dtargets.data[o + c] = -ls * k;
    }
  }
  return { dlogits, dtargets };
}
