#!/usr/bin/env node
// The Deno slice of the suite: builds the browser bundle of the library (shaders inlined, as
// scripts/build.mjs does), bundles each test/deno/*_test.ts against it, and runs them with
// `deno test` on Deno's own WebGPU. Exits with deno's status.
//
// Environment: DENO_WEBGPU_BACKEND (default vulkan: wgpu would otherwise fall back to GL, which has
// no shader-f16), REEF_DENO_OUT (where the tests write their outputs as JSON), REEF_DENO_KEEP=1
// (keep the temporary directory with the bundles).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const deno = join(root, 'node_modules/.bin/deno');
if (!existsSync(deno)) {
  console.error('test:deno: node_modules/.bin/deno is missing (npm install brings the `deno` package)');
  process.exit(1);
}

const dir = mkdtempSync(join(tmpdir(), 'reef-deno-'));
const libEntry = join(root, 'src/index.ts');
const t0 = performance.now();
let status = 1;
try {
  await build({
    entryPoints: [libEntry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    external: ['webgpu'],
    loader: { '.wgsl': 'text' },
    outfile: join(dir, 'reef.browser.mjs'),
    logLevel: 'error',
  });

  // The tests import the library as ../../src/index (typed against the source); here that import
  // becomes the bundle, and everything else they import (cases, float64 references) is bundled in.
  const toBundle = {
    name: 'reef-library-bundle',
    setup(b) {
      b.onResolve({ filter: /src\/index(\.[jt]s)?$/ }, (args) => {
        const target = resolve(args.resolveDir, args.path);
        if (target.replace(/\.[jt]s$/, '') !== libEntry.replace(/\.ts$/, '')) return undefined;
        return { path: './reef.browser.mjs', external: true };
      });
      b.onLoad({ filter: /\.wgsl$/ }, (args) => ({ errors: [{ text: `${args.path}: a test bundle must reach the shaders only through the library bundle` }] }));
    },
  };
  const testDir = join(root, 'test/deno');
  const tests = readdirSync(testDir).filter((f) => f.endsWith('_test.ts')).sort();
  if (tests.length === 0) throw new Error('no test/deno/*_test.ts files');
  const outputs = [];
  for (const f of tests) {
    const outfile = join(dir, f.replace(/\.ts$/, '.mjs'));
    await build({ entryPoints: [join(testDir, f)], bundle: true, format: 'esm', platform: 'browser', target: 'es2022', sourcemap: 'inline', plugins: [toBundle], outfile, logLevel: 'error' });
    outputs.push(outfile);
  }
  console.log(`test:deno: bundles built in ${((performance.now() - t0) / 1000).toFixed(1)} s (${dir})`);

  const denoDir = join(dir, 'deno-dir');
  mkdirSync(denoDir);
  const xdg = process.env.XDG_RUNTIME_DIR ?? join(tmpdir(), `reef-xdg-${process.getuid?.() ?? 0}`);
  mkdirSync(xdg, { recursive: true, mode: 0o700 });
  const t1 = performance.now();
  // Local files only: no remote or npm modules, no config lookup, no update check.
  const run = spawnSync(deno, ['test', '-A', '--no-check', '--no-config', '--no-remote', '--no-npm', '--cached-only', ...outputs], {
    cwd: dir,
    stdio: 'inherit',
    env: {
      ...process.env,
      DENO_WEBGPU_BACKEND: process.env.DENO_WEBGPU_BACKEND ?? 'vulkan',
      DENO_DIR: denoDir,
      DENO_NO_UPDATE_CHECK: '1',
      DENO_NO_PROMPT: '1',
      XDG_RUNTIME_DIR: xdg,
      NO_COLOR: '1',
    },
  });
  if (run.error) throw run.error;
  status = run.status ?? 1;
  console.log(`test:deno: deno test exited ${status} after ${((performance.now() - t1) / 1000).toFixed(1)} s (${((performance.now() - t0) / 1000).toFixed(1)} s in all)`);
} catch (e) {
  console.error(`test:deno: ${e instanceof Error ? e.message : e}`);
  status = 1;
} finally {
  if (process.env.REEF_DENO_KEEP === '1') console.log(`test:deno: kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
process.exit(status);
