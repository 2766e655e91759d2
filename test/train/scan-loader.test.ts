/**
 * The pretraining data loader: batches cut by worker threads and on the main thread are bitwise the
 * batches makeBatches cuts from scans prepared in process; bad files are named and dropped at open;
 * the memory budget evicts; a scan that disappears after open is reported once and replaced by the
 * next one, the same way on both paths.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeNifti1 } from '../../src/data/nifti-write';
import { makePhantom } from '../../src/data/phantom';
import { prepareScan } from '../../src/data/scan-file';
import { makeBatches, type BatchSpec } from '../../src/train/pretrain-batch';
import { ScanLoader } from '../../src/train/scan-loader';
import type { DinoBatch } from '../../src/train/dino-trainer';
import { bundleScanWorker } from '../support/scan-worker-bundle';

let dir: string;
let workerDir: string;
let worker: URL;
const good: string[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'reef-loader-'));
  // The worker runs bundled JavaScript, as under the CLI.
  ({ dir: workerDir, worker } = await bundleScanWorker());
  for (let i = 0; i < 3; i++) {
    const path = join(dir, `good-${i}.nii`);
    // Odd shapes and anisotropic spacing, so the resampling is part of what is compared.
    await writeFile(path, encodeNifti1(makePhantom({ shape: [37 + i, 41, 30 + 3 * i], spacing: [1.3, 1.2, 1.9], seed: 20 + i }), { dtype: 'int16' }));
    good.push(path);
  }
  await writeFile(join(dir, 'bad-truncated.nii'), encodeNifti1(makePhantom({ shape: [40, 40, 40], spacing: [1.5, 1.5, 1.5], seed: 5 }), { dtype: 'int16' }).subarray(0, 5000));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await rm(workerDir, { recursive: true, force: true });
});

const SPEC: BatchSpec = { batch: 3, accumulate: 2, seed: 7, crops: { nGlobal: 2, nLocal: 3, globalSide: 20, localSide: 10, regionScale: [0.1, 0.3], windowPerSample: true } };

function expectSameBatches(a: DinoBatch[], b: DinoBatch[]): void {
  expect(a).toHaveLength(b.length);
  for (let m = 0; m < a.length; m++) {
    expect(Buffer.from(a[m]!.globals.buffer).equals(Buffer.from(b[m]!.globals.buffer))).toBe(true);
    expect(Buffer.from(a[m]!.locals.buffer).equals(Buffer.from(b[m]!.locals.buffer))).toBe(true);
    expect(a[m]!.masks).toEqual(b[m]!.masks);
  }
}

describe('ScanLoader', () => {
  it('worker threads and the main thread cut bitwise the batches of makeBatches; bad files are named at open', async () => {
    const listed = [good[0]!, join(dir, 'bad-truncated.nii'), good[1]!, join(dir, 'missing.nii'), good[2]!];
    const sources = await Promise.all(good.map((p) => prepareScan(p, { minSide: 20 })));
    const logs: string[][] = [[], []];
    const loaders = [
      await ScanLoader.open(listed, { minSide: 20, workerScript: worker, workers: 2, log: (l) => logs[0]!.push(l) }),
      await ScanLoader.open(listed, { minSide: 20, workerScript: null, log: (l) => logs[1]!.push(l), progressEveryMs: 0 }),
    ];
    try {
      expect(loaders[0]!.workers).toBe(2);
      // The main-thread loader reported its progress after every scan but the last.
      expect(logs[1]!.filter((l) => l.startsWith('reading scans'))).toEqual(['reading scans: 1/5', 'reading scans: 2/5 (1 skipped)', 'reading scans: 3/5 (1 skipped)', 'reading scans: 4/5 (2 skipped)']);
      logs[1] = logs[1]!.filter((l) => !l.startsWith('reading scans'));
      for (const [k, loader] of loaders.entries()) {
        expect(loader.usable).toEqual(good);
        expect(logs[k]!.join('\n')).toMatch(/skipping .*bad-truncated\.nii: /);
        expect(logs[k]!.join('\n')).toMatch(/skipping .*missing\.nii: .*cannot read/);
        expect(logs[k]).toHaveLength(2);
      }
      for (let step = 0; step < 3; step++) {
        const want = makeBatches(sources, step, SPEC);
        // The crops really vary (a constant batch would compare equal trivially).
        expect(new Set(want[0]!.globals).size).toBeGreaterThan(100);
        for (const loader of loaders) expectSameBatches(await loader.batches(step, SPEC), want);
      }
    } finally {
      for (const l of loaders) await l.close();
    }
  });

  it('keeps prepared scans within its budget, and replaces a scan that disappears after open the same way on both paths', async () => {
    const copies: string[] = [];
    for (let i = 0; i < 3; i++) {
      const path = join(dir, `copy-${i}.nii`);
      await writeFile(path, encodeNifti1(makePhantom({ shape: [36, 36, 36], spacing: [1.5, 1.5, 1.5], seed: 30 + i }), { dtype: 'int16' }));
      copies.push(path);
    }
    const one = (await prepareScan(copies[0]!, { minSide: 20 })).volume.data.byteLength;
    const logs: string[][] = [[], []];
    // Room for about one scan: every change of scan reloads it.
    const loaders = [
      await ScanLoader.open(copies, { minSide: 20, workerScript: worker, workers: 1, maxBytes: one * 1.5, log: (l) => logs[0]!.push(l) }),
      await ScanLoader.open(copies, { minSide: 20, workerScript: null, maxBytes: one * 1.5, log: (l) => logs[1]!.push(l) }),
    ];
    try {
      for (const loader of loaders) expect(loader.cachedBytes).toBeLessThanOrEqual(one * 1.5);
      const before = await Promise.all(loaders.map((l) => l.batches(0, SPEC)));
      expectSameBatches(before[0]!, before[1]!);
      await rm(copies[1]!);
      const spec = { ...SPEC, batch: 1, accumulate: 1 };
      // Steps 0 and 2 (scans 0 and 2) first: whichever scan was held, one of them loads and pushes out scan 1.
      for (const step of [0, 2, 1, 3]) {
        const got = await Promise.all(loaders.map((l) => l.batches(step, spec)));
        expectSameBatches(got[0]!, got[1]!);
        for (const l of loaders) expect(l.cachedBytes).toBeLessThanOrEqual(one * 1.5);
      }
      for (const lines of logs) {
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(/skipping .*copy-1\.nii: .*cannot read.*loaded at the start/);
      }
      // Step 1 asks for scan 1 (one image a step, in order): it now gets scan 2's image.
      const sources = await Promise.all([copies[0]!, copies[2]!].map((p) => prepareScan(p, { minSide: 20 })));
      expectSameBatches(await loaders[1]!.batches(1, spec), makeBatches([sources[0]!, sources[1]!, sources[1]!], 1, spec));
    } finally {
      for (const l of loaders) await l.close();
    }
  });

  it('a folder with nothing usable fails at open with one clear message', async () => {
    const lines: string[] = [];
    await expect(ScanLoader.open([join(dir, 'bad-truncated.nii')], { minSide: 20, workerScript: worker, log: (l) => lines.push(l) })).rejects.toThrow(/none of the 1 volume\(s\) could be used/);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/skipping .*bad-truncated\.nii: .*(truncated|short|bytes)/i);
  });

  it('a worker script that cannot start fails the loader with its reason instead of hanging', async () => {
    const lines: string[] = [];
    const broken = new URL('file:///nonexistent/reef-scan-worker.mjs');
    // The scan is not blamed: the error is the worker's, and nothing is reported as skipped.
    await expect(ScanLoader.open([good[0]!], { minSide: 20, workerScript: broken, workers: 2, log: (l) => lines.push(l) })).rejects.toThrow(
      /scan worker \d (failed|exited).*while reading .*good-0\.nii/,
    );
    expect(lines).toEqual([]);
  });

  it('a resumed run opens its saved list as is: a scan gone since is passed over in place, not dropped from the list', async () => {
    const corrupt = join(dir, 'corrupt-since.nii');
    await writeFile(corrupt, Buffer.from('was a scan once'));
    const listed = [good[0]!, join(dir, 'gone.nii'), good[2]!, corrupt];
    const spec = { ...SPEC, batch: 1, accumulate: 1 };
    const sources = await Promise.all([good[0]!, good[2]!].map((p) => prepareScan(p, { minSide: 20 })));
    // Read through at open, or (lazy, as a resumed run opens) only checked to be there and read when a step needs it.
    for (const lazy of [false, true]) {
      const lines: string[] = [];
      const loader = await ScanLoader.open(listed, { minSide: 20, workerScript: null, keepListed: true, lazy, log: (l) => lines.push(l) });
      try {
        expect(loader.usable).toEqual(listed);
        expect(loader.skipped.map((s) => s.path)).toEqual(lazy ? [listed[1]] : [listed[1], corrupt]);
        expect(lines.join('\n')).toMatch(lazy ? /^skipping .*gone\.nii: listed when the run began, now ENOENT/ : /gone\.nii/);
        expect(lines).toHaveLength(lazy ? 1 : 2);
        expect(loader.cachedBytes === 0).toBe(lazy);
        // Step 1's image comes from scan 1, gone: scan 2 stands in; step 2 is scan 2's own; step 3's
        // scan no longer reads (reported then, when lazy) and scan 0 stands in.
        const expected = [sources[0]!, sources[1]!, sources[1]!, sources[0]!];
        for (const step of [0, 1, 2, 3]) expectSameBatches(await loader.batches(step, spec), makeBatches(expected, step, spec));
        expect(lines).toHaveLength(2);
        expect(lines[1]).toMatch(/corrupt-since\.nii/);
      } finally {
        await loader.close();
      }
    }
    await expect(ScanLoader.open([join(dir, 'gone.nii')], { minSide: 20, workerScript: null, keepListed: true, lazy: true, log: () => {} })).rejects.toThrow(/none of the 1 listed volume\(s\) is there any more/);
    await expect(ScanLoader.open(good, { minSide: 20, workerScript: null, lazy: true })).rejects.toThrow(/lazy opening is for a saved list/);
  });

  it('a worker that dies is replaced and its job sent again: the batch is unchanged and no scan is blamed', async () => {
    // A wrapper around the real worker that kills its thread on the first crop job it ever sees.
    const mark = join(workerDir, 'crashed-once');
    const wrapper = join(workerDir, 'crash-once.mjs');
    // (The real worker is imported first, so its listener is there when the first job arrives.)
    await writeFile(wrapper, `import ${JSON.stringify(worker.href)};
import { parentPort } from 'node:worker_threads';
import { existsSync, writeFileSync } from 'node:fs';
parentPort.on('message', (job) => { if (job.kind === 'cut' && !existsSync(${JSON.stringify(mark)})) { writeFileSync(${JSON.stringify(mark)}, ''); process.exit(3); } });
`);
    const lines: string[] = [];
    const loader = await ScanLoader.open(good, { minSide: 20, workerScript: pathToFileURL(wrapper), workers: 1, log: (l) => lines.push(l) });
    try {
      const sources = await Promise.all(good.map((p) => prepareScan(p, { minSide: 20 })));
      expectSameBatches(await loader.batches(0, SPEC), makeBatches(sources, 0, SPEC));
      expect(existsSync(mark)).toBe(true); // the one worker did die, and the step's other crops came from its replacement
      expect(lines).toEqual([]);
    } finally {
      await loader.close();
    }
    // A worker that dies while opening a scan is not that scan's fault: open fails, nothing is skipped.
    const onRead = join(workerDir, 'crash-on-read.mjs');
    await writeFile(onRead, `import ${JSON.stringify(worker.href)};
import { parentPort } from 'node:worker_threads';
parentPort.on('message', (job) => { if (job.kind === 'prepare' && job.path.endsWith('good-1.nii')) process.exit(5); });
`);
    const skipped: string[] = [];
    await expect(ScanLoader.open(good, { minSide: 20, workerScript: pathToFileURL(onRead), workers: 1, log: (l) => skipped.push(l) })).rejects.toThrow(
      /scan worker 0 exited \(code 5\) while reading .*good-1\.nii, twice/,
    );
    expect(skipped).toEqual([]);
    // A worker that never answers is stopped after the time limit, and the job fails by name.
    const silent = join(workerDir, 'silent.mjs');
    await writeFile(silent, `import { parentPort } from 'node:worker_threads';
parentPort.on('message', () => {});
`);
    await expect(ScanLoader.open([good[0]!], { minSide: 20, workerScript: pathToFileURL(silent), workers: 1, jobTimeoutMs: 300, log: () => {} })).rejects.toThrow(
      /scan worker 0 did not answer within 0\.3 s while reading .*good-0\.nii, twice/,
    );
    // One that dies on every job fails the job by name, twice lost, and never hangs.
    const always = join(workerDir, 'crash-always.mjs');
    await writeFile(always, `import { parentPort } from 'node:worker_threads';
parentPort.on('message', () => process.exit(4));
`);
    const failing = await ScanLoader.open(good, { minSide: 20, workerScript: null, log: () => {} });
    const src = await failing.source(0);
    await failing.close();
    const { ScanWorkers } = await import('../../src/train/scan-workers');
    const pool = new ScanWorkers(pathToFileURL(always), 2);
    try {
      await expect(pool.run({ kind: 'cut', source: src, step: 3, image: 1, b: 0, spec: SPEC, globals: new Float32Array(1), locals: new Float32Array(1) })).rejects.toThrow(
        /scan worker \d exited \(code 4\) while cutting image 1 of step 3 from .*good-0\.nii, twice/,
      );
    } finally {
      await pool.close();
    }
  });

  it('with a prepared-scan folder, worker threads write it once and read it after: the batches stay bitwise', async () => {
    const cacheDir = join(dir, 'prepared');
    const sources = await Promise.all(good.map((p) => prepareScan(p, { minSide: 20 })));
    for (let pass = 0; pass < 2; pass++) {
      const loader = await ScanLoader.open(good, { minSide: 20, workerScript: worker, workers: 2, cacheDir, log: () => {} });
      try {
        expect((await readdir(cacheDir)).filter((f) => f.endsWith('.prepared'))).toHaveLength(3);
        expectSameBatches(await loader.batches(1, SPEC), makeBatches(sources, 1, SPEC));
      } finally {
        await loader.close();
      }
    }
  });
});
