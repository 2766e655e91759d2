#!/usr/bin/env node
// Load the peer engines on a dawn.node GPU, check their matmul against a float64
// CPU product, then time 1024^2 the way reef's benchmark does (wall time per call,
// upload + multiply + readback, median of several calls after a warm-up call).
//
//   XDG_RUNTIME_DIR=/tmp/xdg node kernels-bench/peers/check.mjs [--no-cpu] [--size 1024] [--reps 5]
//
// Exit code 1 if a loaded peer gives a wrong answer.

import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { loadPeers } from './index.mjs';

const args = process.argv.slice(2);
const argVal = (flag, dflt) => {
  const i = args.indexOf(flag);
  return i >= 0 && args[i + 1] ? Number(args[i + 1]) : dflt;
};
const SIZE = argVal('--size', 1024);
const REPS = argVal('--reps', 5);
const include = ['tfjs-webgpu', 'ort-webgpu'];
if (!args.includes('--no-cpu')) include.push('ort-cpu');

// reef's dawn.node from the repo root node_modules, resolved from this folder.
const require = createRequire(import.meta.url);
const webgpuUrl = pathToFileURL(require.resolve('webgpu')).href;
const { create, globals } = await import(webgpuUrl);

// Must stay strongly referenced for the life of the process (dawn.node frees
// native state under pending callbacks otherwise).
const gpu = create([]);
globalThis.__reefPeersGpu = gpu;

function rand(n, seed) {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = (s / 4294967296) * 2 - 1;
  }
  return out;
}

function ref64(a, b, M, K, N) {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let k = 0; k < K; k++) {
      const av = a[i * K + k];
      if (av === 0) continue;
      for (let j = 0; j < N; j++) c[i * N + j] += av * b[k * N + j];
    }
  return c;
}

// max |got - ref| / max |ref|
function relErr(got, ref) {
  if (got.length !== ref.length) return Infinity;
  let m = 0, e = 0;
  for (let i = 0; i < ref.length; i++) {
    m = Math.max(m, Math.abs(ref[i]));
    const d = Math.abs(got[i] - ref[i]);
    e = Number.isNaN(d) ? Infinity : Math.max(e, d);
  }
  return e / (m || 1);
}

const TOL = { f32: 1e-4, f16: 3e-2 };

const t0 = performance.now();
const { peers, skipped } = await loadPeers({ gpu, globals, include });
console.log(`loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
for (const p of peers) console.log(`  peer ${p.name} [${p.dtypes.join(',')}]: ${p.info ?? ''}`);
for (const s of skipped) console.log(`  SKIPPED ${s.name}: ${s.reason}`);

let failed = false;
console.log('\ncorrectness (max |err| / max |ref|, vs float64 CPU product):');
const shapes = [[64, 48, 80], [256, 256, 256]];
for (const [M, K, N] of shapes) {
  const a = rand(M * K, 1 + M), b = rand(K * N, 2 + N);
  const ref = ref64(a, b, M, K, N);
  for (const p of peers) {
    for (const dtype of p.dtypes) {
      let line;
      try {
        const c = await p.matmul(a, b, M, K, N, dtype);
        const e = relErr(c, ref);
        const ok = e <= TOL[dtype];
        if (!ok) failed = true;
        line = `${e.toExponential(2)} ${ok ? 'ok' : `FAIL (tol ${TOL[dtype]})`}`;
      } catch (err) {
        failed = true;
        line = `ERROR ${err.message}`;
      }
      console.log(`  ${`${M}x${K}x${N}`.padEnd(12)} ${p.name.padEnd(12)} ${dtype}  ${line}`);
    }
  }
}

console.log(`\ntiming ${SIZE}^2 (wall per call incl. upload + readback; 1 warm-up + median of ${REPS}):`);
{
  const n = SIZE;
  const a = rand(n * n, 3), b = rand(n * n, 4);
  const flop = 2 * n * n * n;
  for (const p of peers) {
    for (const dtype of p.dtypes) {
      try {
        let t = performance.now();
        await p.matmul(a, b, n, n, n, dtype); // warm-up: session/pipeline creation
        const warm = performance.now() - t;
        const times = [];
        for (let r = 0; r < REPS; r++) {
          t = performance.now();
          await p.matmul(a, b, n, n, n, dtype);
          times.push(performance.now() - t);
        }
        times.sort((x, y) => x - y);
        const med = times[Math.floor(times.length / 2)];
        const kind = p.name.endsWith('-cpu') ? '  (native CPU, not WebGPU)' : '';
        console.log(`  ${p.name.padEnd(12)} ${dtype}  median ${med.toFixed(1).padStart(8)} ms  ` +
          `${(flop / med / 1e6).toFixed(2).padStart(8)} GFLOP/s  (min ${times[0].toFixed(1)} ms, warm-up ${warm.toFixed(0)} ms)${kind}`);
      } catch (err) {
        failed = true;
        console.log(`  ${p.name.padEnd(12)} ${dtype}  ERROR ${err.message}`);
      }
    }
  }
}

for (const p of peers) await p.dispose();
process.exit(failed ? 1 : 0);
