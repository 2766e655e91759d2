#!/usr/bin/env node
// Bundles kernels-bench/tiny-step-main.ts (WGSL inlined, as scripts/build.mjs does) into dist/bench/
// and runs it with this process's arguments.
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'dist/bench/tiny-step.mjs');
await build({ entryPoints: ['kernels-bench/tiny-step-main.ts'], absWorkingDir: root, bundle: true, format: 'esm', platform: 'node', target: 'node20', packages: 'external', loader: { '.wgsl': 'text' }, outfile, logLevel: 'warning' });
const { main } = await import(pathToFileURL(outfile).href);
process.exitCode = await main(process.argv.slice(2));
// Dawn keeps the process alive while its device exists.
await new Promise((done) => process.stdout.write('', done)); // let a piped stdout drain
process.exit(process.exitCode);
