/**
 * Float64 references for the self-supervised losses and the DINO head, written from their
 * definitions (pairs looped over as the formulas say, not as the kernels organise the work), with
 * their vector–Jacobian products. Scalar losses are Arr of shape [] so checkVjp applies.
 */
import { type Arr, arr } from './array';
import { geluBackward, matmulBackward } from './grads';
import { gelu, logSoftmax, matmul, softmax } from './ops';

const scalar = (v: number): Arr => arr([], [v]);

function rowsOf(x: Arr): [number, number] {
  if (x.shape.length !== 2) throw new Error(`expected a 2-D array, got [${x.shape.join(',')}]`);
  return [x.shape[0]!, x.shape[1]!];
}

function scaled(x: Arr, s: number): Arr {
  const out = arr(x.shape);
  for (let i = 0; i < x.data.length; i++) out.data[i] = x.data[i]! * s;
  return out;
}

// ---------------------------------------------------------------------------------------------
// L2 normalisation over the last axis: y = x / max(‖x‖, eps)
// ---------------------------------------------------------------------------------------------

export function l2Normalize(x: Arr, eps: number): Arr {
  const C = x.shape[x.shape.length - 1]!;
  const out = arr(x.shape);
  for (let o = 0; o < x.data.length; o += C) {
    let s = 0;
    for (let c = 0; c < C; c++) s += x.data[o + c]! ** 2;
    const n = Math.max(Math.sqrt(s), eps);
    for (let c = 0; c < C; c++) out.data[o + c] = x.data[o + c]! / n;
  }
  return out;
}

export function l2NormalizeBackward(x: Arr, eps: number, g: Arr): Arr {
  const C = x.shape[x.shape.length - 1]!;
  const dx = arr(x.shape);
  for (let o = 0; o < x.data.length; o += C) {
    let s = 0;
    for (let c = 0; c < C; c++) s += x.data[o + c]! ** 2;
    const n = Math.sqrt(s);
    if (n > eps) {
      let xg = 0;
      for (let c = 0; c < C; c++) xg += x.data[o + c]! * g.data[o + c]!;
      for (let c = 0; c < C; c++) dx.data[o + c] = g.data[o + c]! / n - (x.data[o + c]! * xg) / n ** 3;
    } else {
      for (let c = 0; c < C; c++) dx.data[o + c] = g.data[o + c]! / eps;
    }
  }
  return dx;
}

// ---------------------------------------------------------------------------------------------
// DINO: teacher targets and the loss
// ---------------------------------------------------------------------------------------------

/** softmax((t − c)/τ) per row. */
export function centeredSoftmax(t: Arr, center: Arr, temp: number): Arr {
  const [R, K] = rowsOf(t);
  const z = arr([R, K]);
  for (let r = 0; r < R; r++) for (let k = 0; k < K; k++) z.data[r * K + k] = (t.data[r * K + k]! - center.data[k]!) / temp;
  return softmax(z);
}

/** m·c + (1 − m)·mean over rows of t. */
export function centerUpdate(center: Arr, t: Arr, momentum: number): Arr {
  const [R, K] = rowsOf(t);
  const out = arr([K]);
  for (let k = 0; k < K; k++) {
    let s = 0;
    for (let r = 0; r < R; r++) s += t.data[r * K + k]!;
    out.data[k] = momentum * center.data[k]! + (1 - momentum) * (s / R);
  }
  return out;
}

/** The plain algorithm: Q = exp((t − max)/τ)ᵀ, Q /= ΣQ, iterations × (rows, columns), B·Qᵀ. */
export function sinkhorn(t: Arr, temp: number, iterations: number): Arr {
  const [B, K] = rowsOf(t);
  let mx = -Infinity;
  for (const v of t.data) mx = Math.max(mx, v);
  const Q = new Float64Array(K * B); // [K][B]
  let total = 0;
  for (let b = 0; b < B; b++) for (let k = 0; k < K; k++) total += (Q[k * B + b] = Math.exp((t.data[b * K + k]! - mx) / temp));
  for (let i = 0; i < Q.length; i++) Q[i] = Q[i]! / total;
  for (let it = 0; it < iterations; it++) {
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let b = 0; b < B; b++) s += Q[k * B + b]!;
      for (let b = 0; b < B; b++) Q[k * B + b] = Q[k * B + b]! / s / K;
    }
    for (let b = 0; b < B; b++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += Q[k * B + b]!;
      for (let k = 0; k < K; k++) Q[k * B + b] = Q[k * B + b]! / s / B;
    }
  }
  const out = arr([B, K]);
  for (let b = 0; b < B; b++) for (let k = 0; k < K; k++) out.data[b * K + k] = B * Q[k * B + b]!;
  return out;
}

function rowSlice(x: Arr, r0: number, n: number): Arr {
  const C = x.shape[1]!;
  return arr([n, C], x.data.subarray(r0 * C, (r0 + n) * C));
}

/**
 * DINO loss: student [V·B, K] view-major (globals first), teacher probabilities [G·B, K]:
 * mean over pairs (g, v ≠ g) of mean over b of −Σ_k q_gbk·log_softmax(s_vb/τ)_k.
 */
export function dinoLoss(student: Arr, teacher: Arr, G: number, temp: number): Arr {
  const [VB, K] = rowsOf(student);
  const B = teacher.shape[0]! / G;
  const V = VB / B;
  let total = 0;
  let terms = 0;
  for (let g = 0; g < G; g++) {
    const q = rowSlice(teacher, g * B, B);
    for (let v = 0; v < V; v++) {
      if (v === g) continue;
      const lp = logSoftmax(scaled(rowSlice(student, v * B, B), 1 / temp));
      let s = 0;
      for (let i = 0; i < B * K; i++) s -= q.data[i]! * lp.data[i]!;
      total += s / B;
      terms++;
    }
  }
  return scalar(total / terms);
}

/** d dinoLoss / d student: Σ_{g ≠ v} (softmax(s_vb/τ) − q_gb) / (τ·B·terms), times the upstream g. */
export function dinoLossBackward(student: Arr, teacher: Arr, G: number, temp: number, gOut: number): Arr {
  const [VB, K] = rowsOf(student);
  const B = teacher.shape[0]! / G;
  const V = VB / B;
  const terms = G * V - G;
  const p = softmax(scaled(student, 1 / temp));
  const d = arr([VB, K]);
  for (let v = 0; v < V; v++) {
    for (let g = 0; g < G; g++) {
      if (g === v) continue;
      for (let b = 0; b < B; b++) {
        for (let k = 0; k < K; k++) {
          const i = (v * B + b) * K + k;
          d.data[i] = d.data[i]! + (gOut * (p.data[i]! - teacher.data[(g * B + b) * K + k]!)) / (temp * B * terms);
        }
      }
    }
  }
  return d;
}

// ---------------------------------------------------------------------------------------------
// iBOT
// ---------------------------------------------------------------------------------------------

/** Σ_tokens −Σ_k t·log_softmax(s/τ) / (#masked of its image), / images. */
export function ibotLoss(student: Arr, teacher: Arr, image: ArrayLike<number>, images: number, temp: number): Arr {
  const [N, K] = rowsOf(student);
  const count = new Array<number>(images).fill(0);
  for (let n = 0; n < N; n++) count[image[n]!]!++;
  const lp = logSoftmax(scaled(student, 1 / temp));
  let total = 0;
  for (let n = 0; n < N; n++) {
    let s = 0;
    for (let k = 0; k < K; k++) s -= teacher.data[n * K + k]! * lp.data[n * K + k]!;
    total += s / count[image[n]!]!;
  }
  return scalar(total / images);
}

export function ibotLossBackward(student: Arr, teacher: Arr, image: ArrayLike<number>, images: number, temp: number, gOut: number): Arr {
  const [N, K] = rowsOf(student);
  const count = new Array<number>(images).fill(0);
  for (let n = 0; n < N; n++) count[image[n]!]!++;
  const p = softmax(scaled(student, 1 / temp));
  const d = arr([N, K]);
  for (let n = 0; n < N; n++) {
    let tsum = 0;
    for (let k = 0; k < K; k++) tsum += teacher.data[n * K + k]!;
    const w = gOut / (count[image[n]!]! * images * temp);
    for (let k = 0; k < K; k++) d.data[n * K + k] = w * (p.data[n * K + k]! * tsum - teacher.data[n * K + k]!);
  }
  return d;
}

// ---------------------------------------------------------------------------------------------
// KoLeo
// ---------------------------------------------------------------------------------------------

/** Nearest neighbour (highest cosine, lowest index on ties) of each row of x̂ within its group. */
export function koleoNeighbours(xhat: Arr, group: number): Int32Array {
  const [R, D] = rowsOf(xhat);
  const nn = new Int32Array(R);
  for (let i = 0; i < R; i++) {
    const g0 = Math.floor(i / group) * group;
    let best = -Infinity;
    for (let j = g0; j < g0 + group; j++) {
      if (j === i) continue;
      let dot = 0;
      for (let k = 0; k < D; k++) dot += xhat.data[i * D + k]! * xhat.data[j * D + k]!;
      if (dot > best) {
        best = dot;
        nn[i] = j;
      }
    }
  }
  return nn;
}

/** Σ_groups −mean_i log(‖x̂_i − x̂_nn(i)‖ + eps), x̂ = x / max(‖x‖, eps); `nn` fixed if given. */
export function koleoLoss(x: Arr, group: number, eps: number, nn?: Int32Array): Arr {
  const [R, D] = rowsOf(x);
  const xh = l2Normalize(x, eps);
  const n = nn ?? koleoNeighbours(xh, group);
  let total = 0;
  for (let i = 0; i < R; i++) {
    let d2 = 0;
    for (let k = 0; k < D; k++) d2 += (xh.data[i * D + k]! - xh.data[n[i]! * D + k]!) ** 2;
    total -= Math.log(Math.sqrt(d2) + eps) / group;
  }
  return scalar(total);
}

export function koleoLossBackward(x: Arr, group: number, eps: number, gOut: number, nn?: Int32Array): Arr {
  const [R, D] = rowsOf(x);
  const xh = l2Normalize(x, eps);
  const n = nn ?? koleoNeighbours(xh, group);
  const dxh = arr([R, D]);
  for (let i = 0; i < R; i++) {
    const j = n[i]!;
    let d2 = 0;
    for (let k = 0; k < D; k++) d2 += (xh.data[i * D + k]! - xh.data[j * D + k]!) ** 2;
    const d = Math.sqrt(d2);
    if (d === 0) continue;
    const c = (-gOut / group) / (d * (d + eps));
    for (let k = 0; k < D; k++) {
      const diff = xh.data[i * D + k]! - xh.data[j * D + k]!;
      dxh.data[i * D + k] = dxh.data[i * D + k]! + c * diff;
      dxh.data[j * D + k] = dxh.data[j * D + k]! - c * diff;
    }
  }
  return l2NormalizeBackward(x, eps, dxh);
}

// ---------------------------------------------------------------------------------------------
// SigReg (Epps–Pulley on slices)
// ---------------------------------------------------------------------------------------------

function knots(tMax: number, J: number): { t: number[]; w: number[] } {
  const dt = tMax / (J - 1);
  const t: number[] = [];
  const w: number[] = [];
  for (let j = 0; j < J; j++) {
    t.push(j * dt);
    w.push((j === 0 || j === J - 1 ? dt : 2 * dt) * Math.exp(-0.5 * (j * dt) ** 2));
  }
  return { t, w };
}

/** mean over slices m of N·Σ_j w_j·((mean_n cos(t_j x_nm) − e^{−t_j²/2})² + (mean_n sin(t_j x_nm))²), x = Z·A. */
export function sigreg(z: Arr, A: Arr, tMax = 3, J = 17): Arr {
  const x = matmul(z, A);
  const [N, M] = rowsOf(x);
  const { t, w } = knots(tMax, J);
  let total = 0;
  for (let m = 0; m < M; m++) {
    let T = 0;
    for (let j = 0; j < J; j++) {
      let c = 0;
      let s = 0;
      for (let n = 0; n < N; n++) {
        c += Math.cos(t[j]! * x.data[n * M + m]!);
        s += Math.sin(t[j]! * x.data[n * M + m]!);
      }
      T += w[j]! * ((c / N - Math.exp(-0.5 * t[j]! ** 2)) ** 2 + (s / N) ** 2);
    }
    total += N * T;
  }
  return scalar(total / M);
}

export function sigregBackwardZ(z: Arr, A: Arr, gOut: number, tMax = 3, J = 17): Arr {
  const x = matmul(z, A);
  const [N, M] = rowsOf(x);
  const { t, w } = knots(tMax, J);
  const dx = arr([N, M]);
  for (let m = 0; m < M; m++) {
    for (let j = 0; j < J; j++) {
      let c = 0;
      let s = 0;
      for (let n = 0; n < N; n++) {
        c += Math.cos(t[j]! * x.data[n * M + m]!);
        s += Math.sin(t[j]! * x.data[n * M + m]!);
      }
      const C = c / N - Math.exp(-0.5 * t[j]! ** 2);
      const S = s / N;
      for (let n = 0; n < N; n++) {
        const a = t[j]! * x.data[n * M + m]!;
        dx.data[n * M + m] = dx.data[n * M + m]! + (gOut / M) * 2 * w[j]! * t[j]! * (S * Math.cos(a) - C * Math.sin(a));
      }
    }
  }
  return matmulBackward(z, A, dx).da;
}

// ---------------------------------------------------------------------------------------------
// DINO head
// ---------------------------------------------------------------------------------------------

export interface HeadParams {
  weights: Arr[];
  biases: Arr[];
  v: Arr;
}

/** MLP (GELU between linear layers) → L2 normalise (1e-12) → · (row-normalised v)ᵀ. */
export function dinoHead(x: Arr, p: HeadParams): Arr {
  let h = x;
  p.weights.forEach((w, i) => {
    h = matmul(h, w, { transB: true, bias: p.biases[i]! });
    if (i + 1 < p.weights.length) h = gelu(h);
  });
  return matmul(l2Normalize(h, 1e-12), l2Normalize(p.v, 0), { transB: true });
}

export function dinoHeadBackward(x: Arr, p: HeadParams, g: Arr): { dx: Arr; dweights: Arr[]; dbiases: Arr[]; dv: Arr } {
  const pre: Arr[] = [];
  const ins: Arr[] = [];
  let h = x;
  p.weights.forEach((w, i) => {
    ins.push(h);
    const z = matmul(h, w, { transB: true, bias: p.biases[i]! });
    pre.push(z);
    h = i + 1 < p.weights.length ? gelu(z) : z;
  });
  const hn = l2Normalize(h, 1e-12);
  const W = l2Normalize(p.v, 0);
  const last = matmulBackward(hn, W, g, { transB: true });
  const dv = l2NormalizeBackward(p.v, 0, last.db);
  let dh = l2NormalizeBackward(h, 1e-12, last.da);
  const dweights: Arr[] = [];
  const dbiases: Arr[] = [];
  for (let i = p.weights.length - 1; i >= 0; i--) {
    const dz = i + 1 < p.weights.length ? geluBackward(pre[i]!, dh) : dh;
    const r = matmulBackward(ins[i]!, p.weights[i]!, dz, { transB: true, bias: p.biases[i]! });
    dweights[i] = r.db;
    dbiases[i] = r.dbias!;
    dh = r.da;
  }
  return { dx: dh, dweights, dbiases, dv };
}
