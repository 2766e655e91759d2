#!/usr/bin/env node
// The `reef` command. In a source checkout the CLI bundle is rebuilt with esbuild whenever a
// source, shader or benchmark file is newer than it (a fraction of a second); an installed
// package runs its prebuilt dist/cli.mjs.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = join(root, 'dist/cli.mjs');

function newestMtime(dir) {
  let newest = 0;
  if (!existsSync(dir)) return newest;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'dist') continue;
    const p = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

const sources = ['src', 'shaders', 'kernels-bench'].map((d) => newestMtime(join(root, d)));
if (existsSync(join(root, 'scripts/build.mjs'))) sources.push(statSync(join(root, 'scripts/build.mjs')).mtimeMs);
const stale = !existsSync(bundle) || Math.max(...sources) > statSync(bundle).mtimeMs;
if (stale && existsSync(join(root, 'scripts/build.mjs')) && existsSync(join(root, 'node_modules/esbuild'))) {
  const { buildCli } = await import(pathToFileURL(join(root, 'scripts/build.mjs')).href);
  await buildCli();
}
if (!existsSync(bundle)) {
  console.error('reef: dist/cli.mjs is missing; run `npm install` (which builds it) in the reef folder');
  process.exit(1);
}
const { main } = await import(pathToFileURL(bundle).href);
process.exitCode = await main(process.argv.slice(2));
// Dawn keeps the process alive while its GPU object exists; the work is done, so leave now.
process.exit(process.exitCode);
