/**
 * The same library under Deno's own WebGPU (wgpu, not Dawn). The shared cases of test/deno/cases.ts
 * (core ops forward and backward, a shifted Swin block forward and backward, a CoralBay features
 * forward) run here in Node from the sources, while scripts/test-deno.mjs runs them under Deno
 * from the browser bundle, checking each against float64 there. Then every Deno output must equal
 * Node's element-wise within the same bound it has against float64 (maxRelError, relative to the
 * largest |Node value|), and every case and output must be there.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as reef from '../../src/index';
import { maxRelError } from '../ref/array';
import { CASES, deserializeValues, verify, type CaseResult, type SerialCase } from '../deno/cases';
import { testRuntime } from '../support/runtime';

const root = resolve(__dirname, '../..');
const hasDeno = existsSync(join(root, 'node_modules/.bin/deno'));
if (!hasDeno) console.log('Deno host test skipped: node_modules/.bin/deno is missing (npm install brings the `deno` package)');

interface DenoRun {
  status: number | null;
  log: string;
  ms: number;
}

/** Starts the Deno task in the background (it takes its own process and device), outputs to `out`. */
function startDeno(out: string): Promise<DenoRun> {
  const t0 = performance.now();
  return new Promise((done) => {
    const child = spawn(process.execPath, [join(root, 'scripts/test-deno.mjs')], { cwd: root, env: { ...process.env, REEF_DENO_OUT: out }, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (b: Buffer) => (log += b.toString()));
    child.stderr.on('data', (b: Buffer) => (log += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 280_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      done({ status, log, ms: performance.now() - t0 });
    });
  });
}

describe('Deno host', () => {
  it.skipIf(!hasDeno)(
    'the shared cases under Deno’s navigator.gpu: within the float64 bounds there, and equal to Node’s within the same bounds',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'reef-deno-out-'));
      try {
        const outFile = join(dir, 'outputs.json');
        const denoRun = startDeno(outFile);

        const rt = await testRuntime();
        const inUse = rt.memory().inUse;
        const node = new Map<string, CaseResult>();
        const problems: string[] = [];
        const rows: string[] = [];
        const t0 = performance.now();
        for (const c of CASES) {
          const r = await c.run(reef, rt, { refs: true });
          node.set(c.name, r);
          for (const f of verify(c.name, r).failures) problems.push(`Node: ${f.what} ${f.err.toExponential(2)} > ${f.bound.toExponential(1)}`);
        }
        const nodeMs = performance.now() - t0;
        await rt.sync();
        expect(rt.memory().inUse, 'bytes held by tensors after the Node cases').toBe(inUse);

        const d = await denoRun;
        const tail = d.log.split('\n').slice(-60).join('\n');
        expect(d.status, `the Deno task exited ${d.status}:\n${tail}`).toBe(0);
        const got = JSON.parse(readFileSync(outFile, 'utf8')) as { host: string; adapter: Record<string, unknown>; cases: Record<string, SerialCase & { ms: number }> };
        expect(got.host).toBe('deno');

        for (const c of CASES) {
          const nr = node.get(c.name)!;
          const dr = got.cases[c.name];
          if (!dr) {
            problems.push(`Deno: case '${c.name}' missing`);
            continue;
          }
          const denoOut = new Map(dr.outputs.map((o) => [o.name, o]));
          if (denoOut.size !== nr.outputs.length) problems.push(`${c.name}: Deno gave ${denoOut.size} outputs, Node ${nr.outputs.length}`);
          for (const o of nr.outputs) {
            const dOut = denoOut.get(o.name);
            if (!dOut) {
              problems.push(`${c.name} ${o.name}: missing from Deno's outputs`);
              continue;
            }
            if (dOut.shape.join() !== o.shape.join()) problems.push(`${c.name} ${o.name}: shape [${dOut.shape}] under Deno, [${o.shape}] under Node`);
            const err = maxRelError(deserializeValues(dOut), o.values);
            const nodeRef = o.ref ? maxRelError(o.values, o.ref) : NaN;
            rows.push(`  ${`${c.name} ${o.name}`.padEnd(72)} ${fmt(nodeRef)} ${fmt(dOut.errRef ?? NaN)} ${fmt(err)}  ≤ ${o.bound.toExponential(1)}`);
            if (!(err <= o.bound)) problems.push(`${c.name} ${o.name}: Deno vs Node ${err.toExponential(2)} > ${o.bound.toExponential(1)}`);
          }
          for (const ch of dr.checks) rows.push(`  ${`${c.name} ${ch.name}`.padEnd(72)} ${' '.repeat(10)} ${fmt(ch.err)} ${' '.repeat(9)}  ≤ ${ch.bound.toExponential(1)}`);
        }
        const denoMs = Object.values(got.cases).reduce((a, r) => a + r.ms, 0);
        console.log(
          `Deno host: ${String(got.adapter.reef)}; requested backend ${String(got.adapter.requestedBackend)}\n` +
            `  Node cases ${(nodeMs / 1000).toFixed(1)} s, Deno task ${(d.ms / 1000).toFixed(1)} s (cases ${(denoMs / 1000).toFixed(1)} s)\n` +
            `  ${'case output'.padEnd(72)} ${'Node/f64'.padStart(10)} ${'Deno/f64'.padStart(10)} ${'Deno/Node'.padStart(9)}  bound\n${rows.join('\n')}`,
        );
        expect(problems, problems.join('\n')).toEqual([]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    300_000,
  );
});

function fmt(x: number): string {
  return (Number.isNaN(x) ? '—' : x.toExponential(2)).padStart(10);
}
