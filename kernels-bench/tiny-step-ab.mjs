#!/usr/bin/env node
// A/B timing of the `tiny` DINO step: two source trees of reef (e.g. a base commit unpacked with
// `git archive <commit> | tar -x -C DIR`, and this checkout) are bundled separately, each gets its
// own runtime (device) in this one process, and their steps alternate, so a drifting, shared
// machine hits both alike. Prints each step and the medians of steps 2… per tree.
//   node kernels-bench/tiny-step-ab.mjs --base DIR [--steps 5]
//   node kernels-bench/tiny-step-ab.mjs --base DIR --profile [--top 10]   per-kernel GPU time of one
//     step after a warm-up step, base then new then base then new (the second pair printed too)
// The bench files (kernels-bench/tiny-step.ts, tiny-step-entry.ts) are this checkout's for both trees.
import { build } from 'esbuild';
import { cpSync, existsSync, symlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { base: { type: 'string' }, steps: { type: 'string', default: '5' }, profile: { type: 'boolean', default: false }, top: { type: 'string', default: '10' } } });
if (!values.base) throw new Error('give --base DIR (a source tree of the base commit)');
const base = resolve(values.base);
for (const f of ['tiny-step.ts', 'tiny-step-entry.ts']) cpSync(join(root, 'kernels-bench', f), join(base, 'kernels-bench', f));
if (!existsSync(join(base, 'node_modules'))) symlinkSync(join(root, 'node_modules'), join(base, 'node_modules'));

async function load(tree, name) {
  const outfile = join(root, `dist/bench/tiny-step-${name}.mjs`);
  await build({ entryPoints: [join(tree, 'kernels-bench/tiny-step-entry.ts')], absWorkingDir: tree, bundle: true, format: 'esm', platform: 'node', target: 'node20', packages: 'external', loader: { '.wgsl': 'text' }, outfile, logLevel: 'warning' });
  return import(pathToFileURL(outfile).href);
}

const trees = [['base', await load(base, 'base')], ['new', await load(root, 'new')]];
if (values.profile) {
  const top = Number(values.top);
  for (let round = 1; round <= 2; round++) {
    for (const [name, mod] of trees) {
      const rt = await mod.Runtime.create({ profile: true });
      const table = (await mod.profileTinyStep(rt, { warmup: 1 })).split('\n');
      rt.dispose();
      console.log(`\n${name}, round ${round}:\n${[...table.slice(0, top + 1), ...table.slice(-2)].join('\n')}`);
    }
  }
  await new Promise((done) => process.stdout.write('', done));
  process.exit(0);
}
const runs = [];
for (const [name, mod] of trees) {
  const rt = await mod.Runtime.create();
  runs.push({ name, rt, stepper: await mod.tinyStepper(rt), ms: [], loss: [] });
}
console.log(`adapter: ${runs[0].rt.describe()}\ndate: ${new Date().toISOString()}`);
for (let i = 0; i < Number(values.steps); i++) {
  for (const r of runs) {
    const { ms, loss } = await r.stepper.step();
    r.ms.push(ms);
    r.loss.push(loss);
    console.log(`${r.name} step ${i + 1}: ${ms.toFixed(0)} ms, loss ${loss.toFixed(6)}`);
  }
}
const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
for (const r of runs) console.log(`${r.name}: median of steps 2–${r.ms.length} ${median(r.ms.slice(1)).toFixed(0)} ms (steps ${r.ms.map((m) => m.toFixed(0)).join(', ')})`);
console.log(`new / base: ${(median(runs[1].ms.slice(1)) / median(runs[0].ms.slice(1))).toFixed(3)}`);
for (const r of runs) {
  r.stepper.dispose();
  r.rt.dispose();
}
await new Promise((done) => process.stdout.write('', done));
process.exit(0);
