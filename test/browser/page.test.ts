/**
 * The browser page in a real Chromium (Debian's /usr/bin/chromium through puppeteer-core, which
 * never downloads a browser): the bundle from scripts/web.mjs, served on 127.0.0.1, driven through
 * `window.reefPage`.
 * - A 32³ head phantom through a CoralBay-tiny encoder with random weights (seed 7) on the page's
 *   WebGPU (SwiftShader in headless Chromium): every output map against the same phantom, weights
 *   and encodeFeatures on Dawn in this process, ≤ 1e-4 relative (max|a − e| / max|e|).
 * - Pixels of niivue's canvas: the four tiles (three slices, the render) show the scan, and the
 *   PCA overlay adds coloured pixels. The page screenshot goes to dist/browser-test/page.png and,
 *   when REEF_SCREENSHOT is set, to that path.
 * - A truncated NIfTI and a junk checkpoint: the page shows an error naming the file and the problem.
 * - Weights that do not fit: the test hands the page its own device (default limits, as an app
 *   sharing its renderer's device would), and a checkpoint with a tensor over maxBufferSize is
 *   refused by name before upload; the page then still runs on that device.
 * - Without navigator.gpu the page says it has no WebGPU; the benchmark tab runs at 64².
 * Chromium is found at REEF_CHROMIUM or /usr/bin/chromium (scripts/setup.sh installs it); without
 * it the test is skipped with a note, except under CI=true, where that is a failure.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFeatures, encodeNifti1, tensor, type Runtime } from '../../src/index';
import { modelInput, randomModel } from '../../web/model';
import { pagePhantom } from '../../web/phantom';
import { testRuntime } from '../support/runtime';
import { CHROMIUM_FLAGS } from '../../scripts/web.mjs';
import { decodePng, newlyColoured, pixelStats, type Rgba } from './png';

const CHROMIUM = process.env.REEF_CHROMIUM ?? '/usr/bin/chromium';
const CI = /^(1|true)$/i.test(process.env.CI ?? '');
const HAVE = existsSync(CHROMIUM);
if (!HAVE && !CI) console.log(`browser page test skipped: no Chromium at ${CHROMIUM} (scripts/setup.sh installs Debian's chromium; REEF_CHROMIUM points at another)`);


const ROOT = join(dirname(new URL(import.meta.url).pathname), '../..');
const OUT = join(ROOT, 'dist/browser-test');
const SIZE = 32;
const SEED = 7;
const PRESET = 'coralbay-tiny' as const;
const MAX_SIDE = 64;

interface Served {
  url: string;
  close(): Promise<void>;
}

let browser: Browser | null = null;
let served: Served | null = null;
let userDir = '';
let page: Page;
let rt: Runtime;
const started = performance.now();

async function openPage(): Promise<Page> {
  const p = await browser!.newPage();
  await p.setViewport({ width: 1400, height: 1000 });
  p.on('pageerror', (e) => console.log(`page error: ${(e as Error).message}`));
  await p.goto(served!.url, { waitUntil: 'load' });
  await p.waitForFunction(() => window.reefPage?.ready === true, { timeout: 60_000 });
  return p;
}

/** Two animation frames, so niivue has drawn what it was just given. */
const frames = (p: Page) => p.evaluate(() => new Promise<void>((r) => requestAnimationFrame(() => requestAnimationFrame(() => r()))));

async function canvasPixels(p: Page): Promise<Rgba> {
  await frames(p);
  const el = await p.$('#gl');
  const png = await el!.screenshot({ type: 'png' });
  return decodePng(new Uint8Array(png));
}

/** The quarters of the canvas: niivue's 2×2 grid of tiles (axial, coronal, sagittal, render). */
function quarters(img: Rgba): [number, number, number, number][] {
  const w = img.width >> 1;
  const h = img.height >> 1;
  return [
    [0, 0, w, h],
    [w, 0, img.width, h],
    [0, h, w, img.height],
    [w, h, img.width, img.height],
  ];
}

describe.skipIf(!HAVE && !CI)('the browser page in Chromium', () => {
  beforeAll(async () => {
    if (!HAVE) throw new Error(`CI=true but Chromium is missing at ${CHROMIUM}: scripts/setup.sh installs Debian's chromium package`);
    const t = performance.now();
    const web = await import('../../scripts/web.mjs');
    const dir = await web.buildWeb({ outdir: join(OUT, 'site') });
    served = await web.serveWeb({ dir, port: 0 });
    userDir = mkdtempSync(join(tmpdir(), 'reef-chromium-'));
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_FLAGS, `--user-data-dir=${userDir}`] });
    page = await openPage();
    rt = await testRuntime();
    console.log(`browser page: built, served at ${served.url}, Chromium ${await browser.version()} up in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  });

  afterAll(async () => {
    await browser?.close();
    await served?.close();
    if (userDir) rmSync(userDir, { recursive: true, force: true });
    console.log(`browser page test: ${((performance.now() - started) / 1000).toFixed(1)} s in all`);
  });

  it('phantom + random tiny weights: every map matches Node (Dawn) within 1e-4, slices and the overlay are drawn', async () => {
    const adapter = await page.evaluate(() => window.reefPage.adapter());
    console.log(`page adapter: ${JSON.stringify(adapter)}`);
    expect(await page.evaluate((s) => window.reefPage.loadPhantom({ size: s, kind: 'head' }), SIZE)).toEqual({ shape: [SIZE, SIZE, SIZE] });
    const before = await canvasPixels(page);
    await page.evaluate((seed, preset) => window.reefPage.useRandomWeights(seed, preset), SEED, PRESET);

    let t = performance.now();
    const got = await page.evaluate((max) => window.reefPage.run('hidden_states.1', { maxSide: max }), MAX_SIDE);
    const browserMs = performance.now() - t;
    expect(got.input).toEqual([SIZE, SIZE, SIZE]);

    // The same volume, weights and encoder in this process, on Dawn.
    t = performance.now();
    const vol = pagePhantom(SIZE, 'head');
    const input = modelInput(vol, MAX_SIDE);
    const model = randomModel(rt, PRESET, SEED);
    const x = tensor(rt, input.data, [1, 1, ...input.shape]);
    const want = new Map<string, { shape: number[]; data: Float32Array }>();
    try {
      for (const o of encodeFeatures(x, model, { anySide: true })) {
        want.set(o.name, { shape: [...o.tensor.shape], data: await o.tensor.read() });
        o.tensor.dispose();
      }
    } finally {
      x.dispose();
      model.dispose();
    }
    const nodeMs = performance.now() - t;
    console.log(`encoder: page ${(browserMs / 1000).toFixed(1)} s (run(), SwiftShader, incl. pipeline compiles and PCA), Node ${(nodeMs / 1000).toFixed(1)} s (Dawn)`);

    expect(got.names).toEqual([...want.keys()]);
    for (const [i, name] of got.names.entries()) {
      const w = want.get(name)!;
      expect(got.shapes[i]).toEqual(w.shape);
      const a = got.data[i]!;
      let maxDiff = 0;
      let maxRef = 0;
      for (let k = 0; k < w.data.length; k++) {
        maxDiff = Math.max(maxDiff, Math.abs(a[k]! - w.data[k]!));
        maxRef = Math.max(maxRef, Math.abs(w.data[k]!));
      }
      const err = maxDiff / Math.max(maxRef, 1e-30);
      console.log(`browser vs Node ${name} [${w.shape.join(', ')}]: max rel error ${err.toExponential(2)}`);
      expect(a.length).toBe(w.data.length);
      expect(err).toBeLessThanOrEqual(1e-4);
    }

    // The screenshot, and the canvas pixels: every tile shows the scan; the overlay brings colour.
    const after = await canvasPixels(page);
    const shot = await page.screenshot({ type: 'png', fullPage: true });
    mkdirSync(OUT, { recursive: true });
    writeFileSync(join(OUT, 'page.png'), shot);
    if (process.env.REEF_SCREENSHOT) {
      mkdirSync(dirname(process.env.REEF_SCREENSHOT), { recursive: true });
      writeFileSync(process.env.REEF_SCREENSHOT, shot);
    }
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    const tiles = quarters(after);
    const litBefore = tiles.map((r) => pixelStats(before, ...r).lit);
    const litAfter = tiles.map((r) => pixelStats(after, ...r).lit);
    const coloured = tiles.map((r) => newlyColoured(before, after, ...r));
    const colouredAll = newlyColoured(before, after);
    console.log(`canvas ${after.width}×${after.height}, tiles axial / coronal / sagittal / render: lit ${litBefore.map(pct).join(' / ')} before the overlay, ${litAfter.map(pct).join(' / ')} after; newly coloured ${coloured.map(pct).join(' / ')} (${pct(colouredAll)} of the canvas)`);
    for (const lit of [...litBefore, ...litAfter]) expect(lit).toBeGreaterThan(0.03);
    expect(colouredAll).toBeGreaterThan(0.03);
    for (const c of coloured) expect(c).toBeGreaterThan(0.01);
    expect(await page.evaluate(() => window.reefPage.errorText())).toBe('');
  }, 300_000);

  it('a truncated NIfTI: the page shows an error naming the file and the problem', async () => {
    const whole = encodeNifti1(pagePhantom(16, 'head'));
    const cut = Array.from(whole.subarray(0, 2000));
    const thrown = await page.evaluate((bytes) => window.reefPage.loadFile(bytes, 'broken.nii').then(() => 'loaded', (e: Error) => e.message), cut);
    console.log(`truncated NIfTI: ${thrown}`);
    expect(thrown).toMatch(/broken\.nii/);
    expect(thrown).toMatch(/truncated/);
    expect(await page.evaluate(() => window.reefPage.errorText())).toBe(thrown);
    expect(await page.$eval('#error', (el) => !(el as HTMLElement).hidden && getComputedStyle(el).display !== 'none')).toBe(true);

    // A checkpoint that is not one: named, and the random weights loaded before are gone with it.
    const bad = await page.evaluate(() => window.reefPage.loadWeightsFile(Array.from({ length: 64 }, (_, i) => i), 'junk.safetensors').then(() => 'loaded', (e: Error) => e.message));
    console.log(`junk checkpoint: ${bad}`);
    expect(bad).toMatch(/junk\.safetensors/);
    expect(await page.evaluate(() => window.reefPage.errorText())).toBe(bad);
  });

  it('weights that do not fit: on a device the host page made with default limits, a tensor over maxBufferSize is refused before upload', async () => {
    // The test plays an app that shares its own device with reef: default limits, so maxBufferSize is
    // WebGPU's 256 MiB. The checkpoint (built in the page) holds one U8 tensor of 64 Mi + 1 values,
    // 256 MiB + 4 bytes once widened to float32.
    const info = await page.evaluate(async () => {
      const adapter = await navigator.gpu.requestAdapter();
      return window.reefPage.useDevice(await adapter!.requestDevice());
    });
    expect(info.maxBufferSize).toBe(256 * 2 ** 20);
    const refused = await page.evaluate(() => {
      const n = 64 * 2 ** 20 + 1;
      let json = JSON.stringify({ 'swinViT.patch_embed.proj.weight': { dtype: 'U8', shape: [n], data_offsets: [0, n] } });
      json += ' '.repeat((8 - (json.length % 8)) % 8);
      const head = new Uint8Array(8 + json.length);
      new DataView(head.buffer).setBigUint64(0, BigInt(json.length), true);
      head.set(new TextEncoder().encode(json), 8);
      const bytes = new Uint8Array(head.length + n);
      bytes.set(head);
      return window.reefPage.loadWeightsFile(bytes, 'huge.safetensors').then(() => 'loaded', (e: Error) => e.message);
    });
    console.log(`weights that do not fit: ${refused}`);
    expect(refused).toMatch(/^huge\.safetensors: the weights do not fit: swinViT\.patch_embed\.proj\.weight needs 256\.0 MiB as float32, over this adapter's largest buffer \(256\.0 MiB\)/);
    expect(await page.evaluate(() => window.reefPage.errorText())).toBe(refused);

    // The page still works on that device: random tiny weights and a run on a small phantom.
    await page.evaluate(() => window.reefPage.loadPhantom({ size: 16, kind: 'head' }));
    await page.evaluate(() => window.reefPage.useRandomWeights(1, 'coralbay-tiny'));
    const ran = await page.evaluate(() => window.reefPage.run('hidden_states.0', { maxSide: 16 }));
    expect(ran.input).toEqual([16, 16, 16]);
    expect(ran.names).toContain('hidden_states.0');
    for (const d of ran.data) expect(d.every((v: number) => Number.isFinite(v))).toBe(true);
    expect(await page.evaluate(() => window.reefPage.errorText())).toBe('');
  }, 300_000);

  it('the benchmark tab runs the matmul engines at 64² with correct results', async () => {
    const rows = await page.evaluate(() => window.reefPage.bench({ sizes: [64], peaks: false, budgetMs: 200 }));
    console.log(`page bench 64²: ${rows.map((r) => `${r.engine} ${r.gflops.toFixed(2)} GFLOP/s (kernel ${r.kernelGflops?.toFixed(2) ?? '-'})`).join(', ')}`);
    expect(rows.length).toBeGreaterThanOrEqual(3);
    for (const r of rows) {
      expect(r.ok).toBe(true);
      expect(r.gflops).toBeGreaterThan(0);
    }
  }, 120_000);

  it('without navigator.gpu the page says so and still loads', async () => {
    const p = await browser!.newPage();
    try {
      await p.evaluateOnNewDocument(() => Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true }));
      await p.goto(served!.url, { waitUntil: 'load' });
      await p.waitForFunction(() => window.reefPage?.ready === true, { timeout: 60_000 });
      const text = await p.evaluate(() => window.reefPage.errorText());
      console.log(`no WebGPU: ${text}`);
      expect(text).toMatch(/no WebGPU/);
    } finally {
      await p.close();
    }
  });
});
