/**
 * A run directory: checkpoints written whole or not at all (latest.json names only complete ones),
 * older ones pruned, tensors and state read back exactly, and metrics.jsonl cut back to a step with
 * a torn last line dropped.
 */
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MetricsWriter, RunDirectory } from '../../src/io/run-dir';
import { readHeader, readTensor } from '../../src/io/safetensors';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'reef-run-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const tensor = (name: string, values: number[]) => ({ name, dtype: 'F32' as const, shape: [values.length], data: new Float32Array(values) });

describe('run directory', () => {
  it('saves, names the latest, loads it back exactly, keeps the newest two', async () => {
    const run = new RunDirectory(root);
    await run.create();
    expect(await run.latest()).toBeNull();
    for (const step of [10, 20, 30]) {
      await run.saveCheckpoint(step, [tensor('w', [step, 1.5, -2]), tensor('m', [0.25])], { step, rng: [1, 2, 3, step] });
    }
    const ref = await run.latest();
    expect(ref?.step).toBe(30);
    expect((await readdir(join(root, 'checkpoints'))).sort()).toEqual(['step-00000020', 'step-00000030']);
    const ck = await run.loadCheckpoint<{ step: number; rng: number[] }>(ref!);
    try {
      expect(ck.state).toEqual({ step: 30, rng: [1, 2, 3, 30] });
      const header = await readHeader(ck.tensors, 'tensors');
      expect(Array.from((await readTensor(ck.tensors, header, 'w')).data as Float32Array)).toEqual([30, 1.5, -2]);
    } finally {
      await ck.tensors.close();
    }
    // No temporary files are left behind.
    const files = await readdir(join(root, ref!.dir));
    expect(files.sort()).toEqual(['state.json', 'tensors.safetensors']);
  });

  it('a checkpoint cut short by a crash is never named latest, and is pruned later', async () => {
    const run = new RunDirectory(root);
    await run.create();
    await run.saveCheckpoint(5, [tensor('w', [1])], { step: 5 });
    // A crash while writing step 10: its directory holds only a partial temporary file.
    await mkdir(join(root, 'checkpoints', 'step-00000010'));
    await writeFile(join(root, 'checkpoints', 'step-00000010', 'tensors.safetensors.tmp-123'), 'partial');
    expect((await run.latest())?.step).toBe(5);
    await run.saveCheckpoint(15, [tensor('w', [2])], { step: 15 }, 1);
    expect(await readdir(join(root, 'checkpoints'))).toEqual(['step-00000015']);
  });

  it('a corrupt latest.json is a clear error naming the file', async () => {
    const run = new RunDirectory(root);
    await run.create();
    await writeFile(join(root, 'latest.json'), '{"step": 3');
    await expect(run.latest()).rejects.toThrow(/latest\.json: not valid JSON/);
  });

  it('metrics.jsonl is appended in order and cut back to a step; a torn last line is dropped', async () => {
    const run = new RunDirectory(root);
    const w = new MetricsWriter(run.metricsPath);
    await Promise.all([1, 2, 3, 4, 5].map((step) => w.append({ step, loss: 1 / step })));
    expect((await run.readMetrics()).map((r) => r.step)).toEqual([1, 2, 3, 4, 5]);
    await run.truncateMetrics(3);
    expect((await run.readMetrics()).map((r) => r.step)).toEqual([1, 2, 3]);
    await appendFile(run.metricsPath, '{"step": 4, "lo');
    await run.truncateMetrics(10);
    expect(await readFile(run.metricsPath, 'utf8')).toBe(['{"step":1,"loss":1}', '{"step":2,"loss":0.5}', `{"step":3,"loss":${1 / 3}}`, ''].join('\n'));
  });
});
