// Bundles reef with esbuild: the Node library and CLI, and a browser bundle. WGSL files are
// inlined as strings (text loader), so no bundle reads shaders from disk or the network.
// `node scripts/build.mjs` builds everything (plus .d.ts types); `--cli` only the CLI.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const common = {
  bundle: true,
  format: 'esm',
  loader: { '.wgsl': 'text' },
  sourcemap: true,
  logLevel: 'warning',
  absWorkingDir: root,
};

export async function buildCli() {
  await build({
    ...common,
    entryPoints: ['src/cli/main.ts'],
    platform: 'node',
    target: 'node20',
    // Node bundles load their npm dependencies from node_modules (some are CommonJS).
    packages: 'external',
    outfile: 'dist/cli.mjs',
  });
  // The pretraining loader's worker threads run this file (found beside cli.mjs).
  await buildScanWorker('dist/scan-worker.mjs', { packages: 'external' });
}

/** The data loader's worker entry, as its own bundle next to the bundle that starts it. */
export async function buildScanWorker(outfile, extra = {}) {
  await build({ ...common, entryPoints: ['src/train/scan-worker.ts'], platform: 'node', target: 'node20', ...extra, outfile });
}

/**
 * One file with every dependency but Dawn inlined, for a machine that has node and the `webgpu`
 * package but no node_modules otherwise (e.g. a lent GPU machine; see ../shared/GPU.md).
 */
export async function buildStandalone() {
  await build({
    ...common,
    entryPoints: ['src/cli/standalone.ts'],
    platform: 'node',
    target: 'node20',
    external: ['webgpu'],
    // Bundled CommonJS dependencies call require() for Node built-ins.
    banner: { js: "import { createRequire as reefCreateRequire } from 'node:module'; const require = reefCreateRequire(import.meta.url);" },
    outfile: 'dist/standalone/reef.mjs',
  });
  await buildScanWorker('dist/standalone/scan-worker.mjs', {
    banner: { js: "import { createRequire as reefCreateRequire } from 'node:module'; const require = reefCreateRequire(import.meta.url);" },
  });
}

export async function buildAll() {
  await buildCli();
  await build({ ...common, entryPoints: ['src/index.ts'], platform: 'node', target: 'node20', packages: 'external', outfile: 'dist/reef.mjs' });
  // The browser bundle never loads Dawn: the host is picked at run time and `webgpu` stays external.
  await build({ ...common, entryPoints: ['src/index.ts'], platform: 'browser', target: 'es2022', external: ['webgpu'], outfile: 'dist/reef.browser.mjs' });
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv.includes('--cli')) await buildCli();
  else if (process.argv.includes('--standalone')) await buildStandalone();
  else await buildAll();
}
