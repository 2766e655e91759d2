/** A run's metrics.jsonl as records without the fields that are timings or memory use (they differ run to run). */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

const TIMING = new Set(['step_ms', 'crops_per_s', 'gpu_peak_bytes', 'gpu_allocated_bytes']);

export async function metricsWithoutTimings(run: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(join(run, 'metrics.jsonl'), 'utf8');
  return text
    .trim()
    .split('\n')
    .map((l) => Object.fromEntries(Object.entries(JSON.parse(l) as Record<string, unknown>).filter(([k]) => !TIMING.has(k))));
}
