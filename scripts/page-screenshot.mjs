// Makes the README's picture of the page: the sample head CT (fetched and cached by `reef pretrain
// --data sample` or the demo), random tiny CoralBay weights, a feature map's first three principal
// components as the overlay, in headless Chromium. `node scripts/page-screenshot.mjs [--out FILE]
// [--map hidden_states.1] [--max-side 64] [--window brain] [--ct FILE.nii.gz]`
import { existsSync, readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import puppeteer from 'puppeteer-core';
import { buildWeb, CHROMIUM_FLAGS, serveWeb } from './web.mjs';

const { values: o } = parseArgs({
  options: {
    out: { type: 'string', default: 'docs/page.png' },
    map: { type: 'string', default: 'hidden_states.1' },
    'max-side': { type: 'string', default: '64' },
    window: { type: 'string', default: 'brain' },
    ct: { type: 'string', default: join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'reef/invesalius-cranium.nii.gz') },
    seed: { type: 'string', default: '7' },
  },
});
if (!existsSync(o.ct)) {
  console.error(`${o.ct}: no such file (run \`bash scripts/run.sh demo\` once to fetch the sample CT, or give --ct)`);
  process.exit(1);
}
const chromium = process.env.REEF_CHROMIUM ?? '/usr/bin/chromium';
await buildWeb();
const served = await serveWeb({ port: 0 });
const userDir = mkdtempSync(join(tmpdir(), 'reef-shot-'));
const browser = await puppeteer.launch({ executablePath: chromium, headless: true, args: [...CHROMIUM_FLAGS, `--user-data-dir=${userDir}`] });
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 1000 });
  await page.goto(served.url, { waitUntil: 'load' });
  await page.waitForFunction(() => window.reefPage?.ready === true, { timeout: 60_000 });
  const name = o.ct.split('/').pop();
  const shape = await page.evaluate((b64, n) => window.reefPage.loadFile(b64, n), readFileSync(o.ct).toString('base64'), name);
  console.log(`${name}: ${shape.shape.join('×')}`);
  await page.evaluate((seed) => window.reefPage.useRandomWeights(seed), Number(o.seed));
  await page.evaluate((w) => window.reefPage.setWindow(w), o.window);
  const t = performance.now();
  await page.evaluate((map, maxSide) => window.reefPage.run(map, { maxSide }), o.map, Number(o['max-side']));
  console.log(`encoder and overlay: ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const error = await page.evaluate(() => window.reefPage.lastError);
  if (error) throw new Error(`the page reports: ${error}`);
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  await page.screenshot({ path: o.out });
  console.log(`wrote ${o.out}`);
} finally {
  await browser.close();
  await served.close();
  rmSync(userDir, { recursive: true, force: true });
}
