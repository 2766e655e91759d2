#!/usr/bin/env node
// Where reef runs: the same matmul benchmark (kernels-bench/host-matmul.ts, built once into one
// bundle) in Node (Dawn), Deno (wgpu) and headless Chromium (Dawn on SwiftShader), one host after
// another so they never share the cores, then one markdown table of each host's adapter, backend,
// features and GFLOP/s.
//
//   node kernels-bench/hosts.mjs [--sizes 256,512,1024] [--reps 5] [--warmup 1] [--min-reps 3]
//     [--budget-ms 10000] [--variants default,naive] [--hosts node,deno,chromium]
//     [--out dist/hosts.md] [--timeout-s 300] [--chromium /usr/bin/chromium] [--keep]
//
// --budget-ms: per size, stop after --min-reps once this much time was spent (SwiftShader takes
// seconds per 1024² call). --timeout-s: per host. --keep: keep the temporary folder of per-host
// results. The bundles and the page go to dist/hosts-bench/.
//
// Writes the table to --out and the raw results next to it (.json). Exits 1 if a host failed or a
// product was wrong (max relative error over 1e-3).
import { spawn, spawnSync } from 'node:child_process';
import { cpus, loadavg, tmpdir } from 'node:os';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { CHROMIUM_FLAGS } from '../scripts/web.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const HOSTS = ['node', 'deno', 'chromium'];
const MAX_REL_ERR = 1e-3;


const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '256,512,1024' },
    reps: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    'min-reps': { type: 'string', default: '3' },
    'budget-ms': { type: 'string', default: '10000' },
    variants: { type: 'string', default: 'default,naive' },
    hosts: { type: 'string', default: HOSTS.join(',') },
    out: { type: 'string', default: 'dist/hosts.md' },
    'timeout-s': { type: 'string', default: '300' },
    chromium: { type: 'string', default: process.env.REEF_CHROMIUM ?? '/usr/bin/chromium' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  const lines = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1);
  console.log(lines.slice(0, lines.findIndex((l) => !l.startsWith('//'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
  process.exit(0);
}

function positiveInts(name, text) {
  const xs = text.split(',').map((s) => Number(s.trim()));
  if (!xs.length || xs.some((x) => !Number.isInteger(x) || x < 1)) {
    console.error(`--${name} ${text}: expected positive integers`);
    process.exit(2);
  }
  return xs;
}
const [reps] = positiveInts('reps', args.reps);
const [minReps] = positiveInts('min-reps', args['min-reps']);
const [budgetMs] = positiveInts('budget-ms', args['budget-ms']);
const [timeoutS] = positiveInts('timeout-s', args['timeout-s']);
const warmup = Number(args.warmup);
if (!Number.isInteger(warmup) || warmup < 0) {
  console.error(`--warmup ${args.warmup}: expected an integer ≥ 0`);
  process.exit(2);
}
const options = {
  sizes: positiveInts('sizes', args.sizes),
  variants: args.variants.split(',').map((s) => s.trim()).filter(Boolean),
  warmup,
  reps,
  minReps: Math.min(minReps, reps),
  budgetMs,
};
if (!options.variants.includes('default')) options.variants.unshift('default');
const hosts = args.hosts.split(',').map((s) => s.trim()).filter(Boolean);
for (const h of hosts) {
  if (!HOSTS.includes(h)) {
    console.error(`--hosts: unknown host '${h}' (have ${HOSTS.join(', ')})`);
    process.exit(2);
  }
}
const outFile = resolve(root, args.out);
const jsonFile = outFile.replace(/\.md$/, '') + '.json';

const xdg = process.env.XDG_RUNTIME_DIR ?? join(tmpdir(), `reef-xdg-${process.getuid?.() ?? 0}`);
mkdirSync(xdg, { recursive: true, mode: 0o700 });
const log = (line) => console.error(line);

// ---------------------------------------------------------------------------------------------
// One build for every host: the library as its browser bundle (what Deno and pages load; in Node
// it picks the Dawn host at run time) and the benchmark with its src/index import pointed at it.
// Files end in .js: scripts/web.mjs serves that as JavaScript, and the repository's package.json
// ("type": "module") makes Node read them as ES modules.

const siteDir = join(root, 'dist/hosts-bench');

async function buildBundles() {
  rmSync(siteDir, { recursive: true, force: true });
  mkdirSync(siteDir, { recursive: true });
  const common = { absWorkingDir: root, bundle: true, format: 'esm', platform: 'browser', target: 'es2022', logLevel: 'error' };
  await build({ ...common, entryPoints: ['src/index.ts'], external: ['webgpu'], loader: { '.wgsl': 'text' }, outfile: join(siteDir, 'reef.js') });
  const libEntry = join(root, 'src/index');
  const toLibrary = {
    name: 'reef-library-bundle',
    setup(b) {
      b.onResolve({ filter: /src\/index(\.[jt]s)?$/ }, (a) => (resolve(a.resolveDir, a.path).replace(/\.[jt]s$/, '') === libEntry ? { path: './reef.js', external: true } : undefined));
      // Anything else from src/ would be a second copy of the library beside the bundle.
      b.onLoad({ filter: /\.ts$/ }, (a) => (a.path.startsWith(join(root, 'src') + sep) ? { errors: [{ text: `${a.path}: the host benchmark must reach reef only through src/index.ts` }] } : undefined));
    },
  };
  await build({ ...common, entryPoints: ['kernels-bench/host-matmul.ts'], plugins: [toLibrary], outfile: join(siteDir, 'host-matmul.js') });

  // Per-host glue: read the options, run, hand back JSON. Nothing else differs between hosts.
  writeFileSync(
    join(siteDir, 'node-run.js'),
    `import { writeFileSync } from 'node:fs';
import { runHostMatmul } from './host-matmul.js';
const [opts, resultFile] = process.argv.slice(2);
try {
  const r = await runHostMatmul(JSON.parse(opts), (l) => console.error('[node] ' + l));
  writeFileSync(resultFile, JSON.stringify(r));
} catch (e) {
  console.error('[node] failed: ' + (e && e.stack ? e.stack : e));
  process.exit(1);
}
// Dawn keeps the process alive while its GPU object exists.
process.exit(0);
`,
  );
  writeFileSync(
    join(siteDir, 'deno-run.js'),
    `import { runHostMatmul } from './host-matmul.js';
const [opts, resultFile] = Deno.args;
try {
  const r = await runHostMatmul(JSON.parse(opts), (l) => console.error('[deno] ' + l));
  Deno.writeTextFileSync(resultFile, JSON.stringify(r));
} catch (e) {
  console.error('[deno] failed: ' + (e && e.stack ? e.stack : e));
  Deno.exit(1);
}
Deno.exit(0);
`,
  );
  writeFileSync(
    join(siteDir, 'page.js'),
    `import { runHostMatmul } from './host-matmul.js';
window.reefHostBench = (opts) => runHostMatmul(opts, (l) => console.log(l));
`,
  );
  writeFileSync(join(siteDir, 'index.html'), '<!doctype html>\n<meta charset="utf-8">\n<link rel="icon" href="data:,">\n<title>reef hosts benchmark</title>\n<script type="module" src="page.js"></script>\n<p>reef matmul on this host: driven by kernels-bench/hosts.mjs</p>\n');
}

// ---------------------------------------------------------------------------------------------
// Hosts

/** Runs a child that writes its result as JSON to a file; resolves with it or throws. */
function runChild(name, cmd, argv, env) {
  const resultFile = join(workDir, `${name}.json`);
  return new Promise((ok, fail) => {
    const child = spawn(cmd, [...argv, JSON.stringify(options), resultFile], { cwd: siteDir, env: { ...process.env, XDG_RUNTIME_DIR: xdg, ...env }, stdio: ['ignore', 'inherit', 'inherit'] });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`timed out after ${timeoutS} s (--timeout-s)`));
    }, timeoutS * 1000);
    child.on('error', (e) => {
      clearTimeout(timer);
      fail(e);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0 && existsSync(resultFile)) ok(JSON.parse(readFileSync(resultFile, 'utf8')));
      else fail(new Error(`exited with ${signal ?? code}`));
    });
  });
}

function version(cmd, argv) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

const packageVersion = (name) => {
  try {
    return JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return '?';
  }
};

async function runNode() {
  const result = await runChild('node', process.execPath, [join(siteDir, 'node-run.js')], {});
  return { ...result, hostLabel: `Node ${process.versions.node} · Dawn (npm webgpu ${packageVersion('webgpu')})` };
}

async function runDeno() {
  const deno = join(root, 'node_modules/.bin/deno');
  if (!existsSync(deno)) throw new Error('node_modules/.bin/deno is missing (npm install brings the `deno` package)');
  const denoDir = join(workDir, 'deno-dir');
  mkdirSync(denoDir, { recursive: true });
  const env = {
    // Unset, wgpu may fall back to GL, which has no shader-f16.
    DENO_WEBGPU_BACKEND: process.env.DENO_WEBGPU_BACKEND ?? 'vulkan',
    DENO_DIR: denoDir,
    DENO_NO_UPDATE_CHECK: '1',
    DENO_NO_PROMPT: '1',
    NO_COLOR: '1',
  };
  // Local files only, as scripts/test-deno.mjs runs its bundles.
  const result = await runChild('deno', deno, ['run', '-A', '--no-check', '--no-config', '--no-remote', '--no-npm', '--cached-only', join(siteDir, 'deno-run.js')], env);
  const v = /deno (\S+)/.exec(version(deno, ['--version']) ?? '')?.[1] ?? '?';
  return { ...result, hostLabel: `Deno ${v} · wgpu` };
}

async function runChromium() {
  if (!existsSync(args.chromium)) throw new Error(`no Chromium at ${args.chromium} (scripts/setup.sh installs Debian's chromium; --chromium or REEF_CHROMIUM points at another)`);
  const { default: puppeteer } = await import('puppeteer-core');
  const { serveWeb } = await import('../scripts/web.mjs');
  const served = await serveWeb({ dir: siteDir, port: 0 });
  const userDir = mkdtempSync(join(tmpdir(), 'reef-hosts-chromium-'));
  let browser = null;
  let timer;
  try {
    browser = await puppeteer.launch({
      executablePath: args.chromium,
      headless: true,
      args: [...CHROMIUM_FLAGS, `--user-data-dir=${userDir}`],
      protocolTimeout: (timeoutS + 30) * 1000,
      env: { ...process.env, XDG_RUNTIME_DIR: xdg },
    });
    const page = await browser.newPage();
    page.on('console', (m) => log(`[chromium] ${m.text()}`));
    page.on('pageerror', (e) => log(`[chromium] page error: ${e.message}`));
    await page.goto(served.url, { waitUntil: 'load' });
    await page.waitForFunction(() => typeof window.reefHostBench === 'function', { timeout: 60_000 });
    const timeout = new Promise((_, fail) => (timer = setTimeout(() => fail(new Error(`timed out after ${timeoutS} s (--timeout-s)`)), timeoutS * 1000)));
    const result = await Promise.race([page.evaluate((o) => window.reefHostBench(o), options), timeout]);
    const v = (await browser.version()).replace(/^[A-Za-z]+\//, '');
    const dawn = await dawnAdapters(page).catch((e) => {
      log(`[chromium] chrome://gpu not read: ${e.message}`);
      return [];
    });
    return { ...result, hostLabel: `Chromium ${v} · Dawn`, dawnAdapters: dawn, pageAdapter: pageAdapter(result.facts, dawn) };
  } finally {
    clearTimeout(timer);
    await browser?.close().catch(() => {});
    await served.close();
    rmSync(userDir, { recursive: true, force: true });
  }
}

/**
 * The adapters Chromium's Dawn lists on chrome://gpu ("Dawn Info": `<CPU>  Vulkan backend - NAME`),
 * since a page's GPUAdapterInfo names neither the backend nor, on SwiftShader, the device.
 */
async function dawnAdapters(page) {
  await page.goto('chrome://gpu', { waitUntil: 'load' });
  const deadline = performance.now() + 15_000;
  for (;;) {
    // The page is nested shadow roots filled in asynchronously: walk every text node.
    const text = await page.evaluate(() => {
      const walk = (n) => {
        let s = n.shadowRoot ? walk(n.shadowRoot) : '';
        for (const c of n.childNodes) s += c.nodeType === 3 ? `${c.textContent}\n` : walk(c);
        return s;
      };
      return walk(document.body);
    });
    const lines = text.split('\n').map((l) => l.trim());
    const at = lines.indexOf('Dawn Info');
    // The section appears before the GPU process has filled it in.
    const found = (at < 0 ? [] : lines.slice(at))
      .map((l) => /^<(CPU|[A-Za-z ]*GPU)>\s+(\S+) backend - (.*)$/.exec(l))
      .filter(Boolean)
      .map(([, kind, backend, rest]) => ({ kind, backend, name: rest.replace(/\s*\(Compatibility Mode\)$/, ''), compat: /\(Compatibility Mode\)$/.test(rest) }));
    if (found.length) return found;
    if (performance.now() > deadline) throw new Error(at < 0 ? 'no Dawn Info section' : 'no adapters in Dawn Info');
    await new Promise((ok) => setTimeout(ok, 250));
  }
}

/** The chrome://gpu entry of the adapter the page got: a core (not compatibility-mode) one whose name holds the architecture. */
function pageAdapter(facts, dawn) {
  const arch = String(facts.adapterInfo.architecture || facts.caps.architecture || '').toLowerCase();
  const hits = dawn.filter((d) => !d.compat && arch && d.name.toLowerCase().includes(arch));
  return hits.length === 1 ? hits[0] : null;
}

// ---------------------------------------------------------------------------------------------
// Report

const yesNo = (b) => (b === null || b === undefined ? 'n/a' : b ? 'yes' : 'no');
const cell = (s) => String(s).replace(/\|/g, '\\|').replace(/\s+/g, ' ');
const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');

function subgroups(caps) {
  if (!caps.subgroups) return 'no';
  const { subgroupMinSize: lo, subgroupMaxSize: hi } = caps;
  if (!lo && !hi) return 'yes (size not reported)';
  return `yes (${lo === hi ? lo : `${lo}–${hi}`})`;
}

/** The backend as the host tells it; for Chromium, as chrome://gpu lists the page's adapter. */
function backend(r) {
  if (r.pageAdapter) return `${r.pageAdapter.backend.toLowerCase()} (chrome://gpu)`;
  return r.facts.caps.backend;
}

function adapterName(r) {
  const { caps } = r.facts;
  const name = caps.description || caps.device || r.pageAdapter?.name || [caps.vendor, caps.architecture].filter(Boolean).join(' ') || '?';
  return `${name}${caps.isCpu ? ' (CPU)' : ''}`;
}

function summaryTable(results) {
  const sizes = options.sizes;
  const head = ['host', 'adapter', 'backend', 'f16', 'subgroups (size)', 'timestamps', 'fallback', 'default variant', ...sizes.map((n) => `${n}² GFLOP/s (× naive)`), 'timed by'];
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map((h, i) => (i >= 8 && i < 8 + sizes.length ? '---:' : '---')).join(' | ')} |`];
  for (const r of results) {
    if (r.error) {
      lines.push(`| ${cell(r.host)} | failed: ${cell(r.error)} | ${head.slice(2).map(() => '-').join(' | ')} |`);
      continue;
    }
    const { caps } = r.facts;
    const adapter = adapterName(r);
    const dflt = r.rows.find((x) => x.variant === 'default');
    const perSize = sizes.map((n) => {
      const d = r.rows.find((x) => x.size === n && x.variant === 'default');
      const nv = r.rows.find((x) => x.size === n && x.variant === 'naive');
      if (!d) return '-';
      const bad = d.maxRelErr > MAX_REL_ERR ? ' **wrong**' : '';
      return `${fmt(d.gflops)}${nv ? ` (${fmt(d.gflops / nv.gflops, 1)}×)` : ''}${bad}`;
    });
    const timedBy = r.facts.timing === 'timestamps' ? 'GPU timestamps' : 'wall, to queue idle';
    lines.push(`| ${[r.hostLabel, adapter, backend(r), yesNo(caps.f16), subgroups(caps), yesNo(caps.timestamps), yesNo(r.facts.isFallbackAdapter), dflt ? dflt.kernel.split(' ')[0] : '-', ...perSize, timedBy].map(cell).join(' | ')} |`);
  }
  return lines.join('\n');
}

function detailTable(results) {
  const head = ['host', 'n', 'kernel', 'median ms', 'GFLOP/s', 'wall ms', 'wall GFLOP/s', 'reps', 'max rel err'];
  const lines = [`| ${head.join(' | ')} |`, `| --- | ---: | --- | ${head.slice(3).map(() => '---:').join(' | ')} |`];
  for (const r of results) {
    if (r.error) continue;
    for (const x of r.rows) {
      const wallGflops = (2 * x.size ** 3) / x.wallMs / 1e6;
      lines.push(`| ${[r.host, x.size, x.kernel, fmt(x.medianMs), fmt(x.gflops), fmt(x.wallMs), fmt(wallGflops), x.reps, x.maxRelErr.toExponential(1)].map(cell).join(' | ')} |`);
    }
  }
  return lines.join('\n');
}

function commit() {
  const sha = version('git', ['-C', root, 'rev-parse', '--short', 'HEAD']);
  if (!sha) return 'unknown';
  const dirty = version('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no']);
  return dirty ? `${sha} (with uncommitted changes)` : sha;
}

// ---------------------------------------------------------------------------------------------

const workDir = mkdtempSync(join(tmpdir(), 'reef-hosts-'));
const started = performance.now();
const loadBefore = loadavg().map((x) => x.toFixed(2)).join(', ');
const results = [];
try {
  let t = performance.now();
  await buildBundles();
  log(`hosts: built ${siteDir} in ${((performance.now() - t) / 1000).toFixed(1)} s; sizes ${options.sizes.join(', ')}, variants ${options.variants.join(', ')}, ${options.warmup} warm-up + ${options.reps} reps`);
  const runners = { node: runNode, deno: runDeno, chromium: runChromium };
  for (const host of hosts) {
    t = performance.now();
    try {
      results.push({ host, ...(await runners[host]()) });
      log(`hosts: ${host} done in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      results.push({ host, error: msg });
      log(`hosts: ${host} failed after ${((performance.now() - t) / 1000).toFixed(1)} s: ${msg}`);
    }
  }
} finally {
  if (args.keep) log(`hosts: kept ${workDir}`);
  else rmSync(workDir, { recursive: true, force: true });
}

const cpu = cpus();
const timingNote =
  'GFLOP/s = 2n³ / median time of one n×n·n×n f32 product with the inputs already on the GPU; "GPU timestamps" is the kernel\'s own time from timestamp queries, ' +
  '"wall, to queue idle" is recording the dispatch through `onSubmittedWorkDone` (no transfers either way). × naive: against reef\'s one-output-per-invocation kernel, interleaved with it in the same run.';
const md = [
  '## Where reef runs',
  '',
  summaryTable(results),
  '',
  timingNote,
  '',
  `- date: ${new Date().toISOString()}, commit ${commit()}`,
  `- machine: ${cpu.length} × ${cpu[0]?.model ?? '?'}; load average ${loadBefore} before, ${loadavg().map((x) => x.toFixed(2)).join(', ')} after`,
  `- run: sizes ${options.sizes.join(', ')}; ${options.warmup} warm-up + ${options.reps} timed calls per variant (at least ${options.minReps}, fewer past ${options.budgetMs} ms per size), interleaved; ${((performance.now() - started) / 1000).toFixed(0)} s in all`,
  ...results.filter((r) => !r.error).map((r) => `- ${r.host}: ${r.facts.describe}${r.facts.userAgent ? `; ${r.facts.userAgent}` : ''}`),
  ...results
    .filter((r) => r.dawnAdapters?.length)
    .map((r) => `- ${r.host}'s Dawn lists (chrome://gpu): ${r.dawnAdapters.map((d) => `${d.backend} ${d.name}${d.compat ? ' (compatibility mode)' : ''}`).join('; ')}`),
  '',
  '### Every timed kernel',
  '',
  detailTable(results),
  '',
].join('\n');

mkdirSync(dirname(outFile), { recursive: true });
writeFileSync(outFile, md);
writeFileSync(jsonFile, JSON.stringify({ options, results }, null, 2) + '\n');
console.log(md);
log(`hosts: wrote ${outFile} and ${jsonFile}`);
const wrong = results.some((r) => r.error || r.rows.some((x) => !(x.maxRelErr <= MAX_REL_ERR)));
process.exit(wrong ? 1 : 0);
