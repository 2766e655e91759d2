/**
 * The same library under Deno's own WebGPU (wgpu, not Dawn): the browser bundle, built here with the
 * shaders inlined, runs a matmul with a fused bias, GELU, a reduction and backward, and the values
 * are checked against hand-computed ones.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { maxRelError } from '../ref/array';
import { normalCdf, normalPdf } from '../ref/ops';

const root = resolve(__dirname, '../..');
const denoBin = join(root, 'node_modules/.bin/deno');
const hasDeno = existsSync(denoBin);
if (!hasDeno) console.log('Deno host test skipped: node_modules/.bin/deno is missing (npm install brings the `deno` package)');

const SCRIPT = (bundle: string) => `
import { createRuntime, tensor, matmul, gelu, sum, backward } from ${JSON.stringify(bundle)};
const rt = await createRuntime();
const a = tensor(rt, [1, 2, 3, 4, 5, 6], [2, 3], { requiresGrad: true });
const b = tensor(rt, [1, 0, 0, 1, 1, 1], [3, 2]);
const bias = tensor(rt, [0.5, -0.5], [2]);
const c = matmul(a, b, { bias });
const s = sum(gelu(c));
backward(s);
const out = { host: rt.host.name, f16: rt.caps.f16, c: Array.from(await c.read()), s: await s.item(), da: Array.from(await a.grad.read()) };
rt.dispose();
console.log(JSON.stringify(out));
`;

describe('Deno host', () => {
  it.skipIf(!hasDeno)('runs the browser bundle on Deno’s navigator.gpu', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'reef-deno-'));
    try {
      const bundle = join(dir, 'reef.browser.mjs');
      await build({ entryPoints: [join(root, 'src/index.ts')], bundle: true, format: 'esm', platform: 'browser', target: 'es2022', external: ['webgpu'], loader: { '.wgsl': 'text' }, outfile: bundle, logLevel: 'error' });
      const script = join(dir, 'main.mjs');
      writeFileSync(script, SCRIPT(pathToFileURL(bundle).href));
      const run = spawnSync(denoBin, ['run', '--quiet', '-A', script], {
        env: { ...process.env, DENO_WEBGPU_BACKEND: 'vulkan', DENO_DIR: join(dir, 'deno-cache'), NO_COLOR: '1' },
        encoding: 'utf8',
        timeout: 90_000,
      });
      const line = run.stdout.trim().split('\n').pop() ?? '';
      expect(run.status, `deno exited ${run.status}: ${run.stderr}`).toBe(0);
      const out = JSON.parse(line) as { host: string; c: number[]; s: number; da: number[] };
      expect(out.host).toBe('deno');
      // c = a·b + bias = [[4.5, 4.5], [10.5, 10.5]]; s = Σ gelu(c); da[i,k] = Σ_j gelu'(c[i,j])·b[k,j].
      expect(out.c).toEqual([4.5, 4.5, 10.5, 10.5]);
      const g = (x: number) => x * normalCdf(x);
      const dg = (x: number) => normalCdf(x) + x * normalPdf(x);
      expect(maxRelError([out.s], [2 * g(4.5) + 2 * g(10.5)])).toBeLessThan(1e-6);
      const da = [4.5, 10.5].flatMap((ci) => [dg(ci), dg(ci), 2 * dg(ci)]);
      expect(maxRelError(out.da, da)).toBeLessThan(1e-6);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
