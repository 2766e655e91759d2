/**
 * `reef pretrain` in process on the synthetic phantom with a shrunken tiny recipe: the run directory
 * (config, metrics.jsonl with every term, loss.svg, checkpoints named by latest.json, the exported
 * backbone in MONAI names), a run stopped after step 2 and resumed giving bitwise the metrics of an
 * uninterrupted run (timings aside), and bad data: an empty folder, a corrupt NIfTI, a NaN volume and
 * a volume smaller than a crop each named in a clear message, and the scan workers lost mid-run (the
 * finished steps checkpointed, the run resumed after).
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime';
import { runPretrain, runSummary, type PretrainOptions } from '../../src/cli/pretrain';
import { encodeNifti1 } from '../../src/data/nifti-write';
import { makePhantom } from '../../src/data/phantom';
import type { Volume } from '../../src/data/nifti';
import { writeCtSlice } from '../data/dicom-writer';
import { readHeader } from '../../src/io/safetensors';
import { fileSource } from '../../src/io/node-file';
import { testRuntime } from '../support/runtime';
import { metricsWithoutTimings } from '../support/run-metrics';
import { bundleScanWorker } from '../support/scan-worker-bundle';

let rt: Runtime;
let root: string;
beforeAll(async () => {
  rt = await testRuntime();
  root = await mkdtemp(join(tmpdir(), 'reef-pretrain-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const SMALL = { prototypes: 64, headHidden: 32, bottleneck: 16, locals: 2, epochSteps: 2 };
const base = (out: string, extra: Partial<PretrainOptions> = {}): PretrainOptions => ({
  data: 'phantom',
  preset: 'tiny',
  steps: 3,
  out,
  seed: 3,
  checkpointEvery: 2,
  overrides: SMALL,
  log: () => {},
  progress: false,
  ...extra,
});
/** Writes `vol` as axial CT slices (signed 16-bit HU), alternating between the given series UIDs. */
async function writeSeries(dir: string, vol: Volume, uids: readonly string[]): Promise<void> {
  await mkdir(dir);
  const [nd, nh, nw] = vol.shape;
  for (let i = 0; i < nd; i++) {
    const pixels = Array.from(vol.data.subarray(i * nh * nw, (i + 1) * nh * nw), (v) => Math.round(v));
    const slice = writeCtSlice({
      rows: nh,
      columns: nw,
      pixels,
      seriesUid: uids[i % uids.length]!,
      position: [0, 0, i * vol.spacing[0]],
      orientation: [1, 0, 0, 0, 1, 0],
      pixelSpacing: [vol.spacing[1], vol.spacing[2]],
      pixelRepresentation: 1,
    });
    await writeFile(join(dir, `img${(i * 7919) % 1000}`), slice);
  }
}

describe('reef pretrain', () => {
  // Sinkhorn–Knopp over a short queue here (pretrain-kill.test.ts resumes centring): the
  // queue's rows and fill must come back from the checkpoint for the resumed losses to match.
  const QUEUED = { overrides: { ...SMALL, centering: 'sinkhorn' as const, sinkhornQueue: 6 } };
  it('writes the run directory; a run stopped at step 2 and resumed matches an uninterrupted one bitwise', async () => {
    const straight = join(root, 'straight');
    expect(await runPretrain(rt, base(straight, QUEUED))).toBe(0);
    const records = await metricsWithoutTimings(straight);
    expect(records.map((r) => r.step)).toEqual([1, 2, 3]);
    for (const r of records) for (const k of ['loss', 'dino', 'ibot', 'koleo', 'lr', 'teacher_entropy']) expect(Number.isFinite(r[k] as number), k).toBe(true);
    expect(await readFile(join(straight, 'loss.svg'), 'utf8')).toContain('<path');
    expect(JSON.parse(await readFile(join(straight, 'latest.json'), 'utf8'))).toEqual({ step: 3, dir: join('checkpoints', 'step-00000003') });
    // The exported student backbone has MONAI names and loads as a CoralBay encoder checkpoint.
    const src = await fileSource(join(straight, 'backbone.safetensors'));
    const header = await readHeader(src, 'backbone');
    await src.close();
    expect([...header.tensors.keys()]).toContain('swinViT.patch_embed.proj.weight');
    expect([...header.tensors.keys()]).toContain('encoder10.layer.conv1.conv.weight');

    const stopped = join(root, 'stopped');
    expect(await runPretrain(rt, base(stopped, { ...QUEUED, stopAfter: 2 }))).toBe(0);
    expect(await metricsWithoutTimings(stopped)).toHaveLength(2);
    // A step's line written after the checkpoint (a crash before the next one) is cut on resume.
    await writeFile(join(stopped, 'metrics.jsonl'), `${await readFile(join(stopped, 'metrics.jsonl'), 'utf8')}{"step":3,"loss":1}\n`);
    expect(await runPretrain(rt, { ...base(stopped, QUEUED), out: undefined, resume: stopped, steps: 0 })).toBe(0);
    expect(await metricsWithoutTimings(stopped)).toEqual(records);
  });

  it('bad data: an empty folder fails clearly; corrupt, NaN and too-small volumes are named and skipped', async () => {
    const empty = join(root, 'empty');
    await mkdir(empty);
    await expect(runPretrain(rt, base(join(root, 'r1'), { data: empty }))).rejects.toThrow(/no NIfTI volumes/);

    const bad = join(root, 'bad');
    await mkdir(bad);
    await writeFile(join(bad, 'a-corrupt.nii.gz'), Buffer.from('not a nifti file at all'));
    const nan = makePhantom({ shape: [40, 40, 40], spacing: [1.5, 1.5, 1.5], seed: 1 });
    nan.data[123] = NaN;
    await writeFile(join(bad, 'b-nan.nii'), encodeNifti1(nan, { dtype: 'float32' }));
    await writeFile(join(bad, 'c-small.nii'), encodeNifti1(makePhantom({ shape: [20, 40, 40], spacing: [1.5, 1.5, 1.5], seed: 2 }), { dtype: 'float32' }));
    await writeFile(join(bad, 'd-good.nii'), encodeNifti1(makePhantom({ shape: [40, 40, 40], spacing: [1.5, 1.5, 1.5], seed: 3 }), { dtype: 'float32' }));
    // A DICOM series in a sub-folder (file names unordered, one stray text file), and a folder
    // mixing two series, which is refused by name.
    await writeSeries(join(bad, 'e-series'), makePhantom({ shape: [36, 40, 40], spacing: [1.5, 1.5, 1.5], seed: 4 }), ['1.2.3.4']);
    await writeFile(join(bad, 'e-series', 'notes.txt'), 'not a slice');
    await writeSeries(join(bad, 'f-mixed'), makePhantom({ shape: [36, 40, 40], spacing: [1.5, 1.5, 1.5], seed: 5 }), ['1.2.3.5', '1.2.3.6']);
    const lines: string[] = [];
    expect(await runPretrain(rt, base(join(root, 'r2'), { data: bad, steps: 1, log: (l) => lines.push(l) }))).toBe(0);
    const text = lines.join('\n');
    expect(text).toMatch(/skipping .*a-corrupt\.nii\.gz: /);
    expect(text).toMatch(/skipping .*b-nan\.nii: .*NaN/);
    expect(text).toMatch(/skipping .*c-small\.nii: .*smaller than a 32³ crop/);
    expect(text).not.toMatch(/skipping .*d-good/);
    expect(text).toMatch(/skipping .*e-series.notes\.txt: not a DICOM file/);
    expect(text).not.toMatch(/skipping .*e-series:/);
    expect(text).toMatch(/skipping .*f-mixed: .*1\.2\.3\.5.*1\.2\.3\.6/s);
    expect(text).toContain('on 2 volume(s)');
    // The run fixes its usable scans for --resume, with what was dropped and why.
    const scans = JSON.parse(await readFile(join(root, 'r2', 'scans.json'), 'utf8')) as { usable: string[]; skipped: { path: string; reason: string }[] };
    expect(scans.usable.map((p) => p.slice(bad.length + 1))).toEqual(['d-good.nii', 'e-series']);
    expect(scans.skipped.map((e) => e.path.slice(bad.length + 1))).toEqual(['a-corrupt.nii.gz', 'b-nan.nii', 'c-small.nii', 'f-mixed']);
    expect(scans.skipped[1]!.reason).toMatch(/NaN/);

    const allBad = join(root, 'allbad');
    await mkdir(allBad);
    await writeFile(join(allBad, 'x.nii'), Buffer.from('garbage'));
    await expect(runPretrain(rt, base(join(root, 'r3'), { data: allBad, log: () => {} }))).rejects.toThrow(/none of the 1 volume\(s\) could be used/);
  });

  it('a data failure mid-run (the scan workers lost): finished steps are checkpointed, the error names the job, and a resume matches an uninterrupted run', async () => {
    const data = join(root, 'lost-data');
    await mkdir(data);
    for (const seed of [6, 7]) await writeFile(join(data, `p${seed}.nii`), encodeNifti1(makePhantom({ shape: [40, 40, 40], spacing: [1.5, 1.5, 1.5], seed }), { dtype: 'float32' }));
    const opts = { data, steps: 4, checkpointEvery: 0 };
    const straight = join(root, 'lost-straight');
    expect(await runPretrain(rt, base(straight, { ...opts, loaderWorkers: 0 }))).toBe(0);
    const records = await metricsWithoutTimings(straight);

    // The real worker, bundled as the CLI ships it, wrapped so that it dies on every crop job once
    // the marker exists; the pool replaces it, loses the job again and gives up naming it.
    const { dir: workerDir, worker } = await bundleScanWorker();
    try {
      const mark = join(workerDir, 'die');
      const wrapper = join(workerDir, 'die-when-marked.mjs');
      await writeFile(wrapper, `import ${JSON.stringify(worker.href)};
import { parentPort } from 'node:worker_threads';
import { existsSync } from 'node:fs';
parentPort.on('message', (job) => { if (job.kind === 'cut' && existsSync(${JSON.stringify(mark)})) process.exit(6); });
`);
      const broken = join(root, 'lost-broken');
      const viaWorkers = { ...opts, loaderWorkers: 1, scanWorkerScript: pathToFileURL(wrapper) };
      const onStep = async (step: number) => {
        if (step === 1) await writeFile(mark, '');
      };
      await expect(runPretrain(rt, base(broken, { ...viaWorkers, onStep }))).rejects.toThrow(/scan worker 0 exited \(code 6\) while cutting image \d of step \d from .*p[67]\.nii, twice/);
      // Step 2's crops were cut before the marker appeared; later ones were not. What finished is kept.
      const latest = JSON.parse(await readFile(join(broken, 'latest.json'), 'utf8')) as { step: number };
      expect(latest.step).toBeGreaterThanOrEqual(1);
      expect(latest.step).toBeLessThan(4);
      expect(await metricsWithoutTimings(broken)).toEqual(records.slice(0, latest.step));

      await rm(mark);
      expect(await runPretrain(rt, { ...base(broken, viaWorkers), out: undefined, resume: broken, steps: 0 })).toBe(0);
      expect(await metricsWithoutTimings(broken)).toEqual(records);
    } finally {
      await rm(workerDir, { recursive: true, force: true });
    }
  });

  it('summarises a run by its first and last 20 steps, or its halves when shorter, and the last 100', () => {
    const rec = (step: number, dino: number, entropy: number, argmax: number[]) => ({ step, dino, teacher_entropy: entropy, teacher_argmax: argmax });
    const long = Array.from({ length: 300 }, (_, i) => rec(i + 1, i < 20 ? 8 : i >= 280 ? 6 : 7, i >= 200 ? Math.log(64) / 2 : 1, [i % 37, 50]));
    expect(runSummary(long, 64)).toBe(
      `300 steps: mean DINO loss first 20 8.0000, last 20 6.0000 (0.750×); last 100: teacher entropy ${(Math.log(64) / 2).toFixed(3)} nats (0.500 ln K), 38 distinct argmax prototypes`,
    );
    // A 20-step demo compares its first 10 steps with its last 10, not a window with itself.
    const short = Array.from({ length: 20 }, (_, i) => rec(i + 1, i < 10 ? 8 : 7, 1, [i]));
    expect(runSummary(short, 64)).toMatch(/^20 steps: mean DINO loss first 10 8\.0000, last 10 7\.0000 \(0\.875×\); last 20: .* 20 distinct/);
    expect(runSummary([], 64)).toBeNull();
  });
});
