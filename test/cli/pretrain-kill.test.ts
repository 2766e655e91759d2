/**
 * `reef pretrain` killed with SIGKILL in the middle of a run (after its first checkpoint, with a step
 * written past it), then `--resume`d in a new process: its metrics.jsonl equals that of a run that
 * was never interrupted, timings aside. Real processes: nothing gets a chance to clean up.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricsWithoutTimings } from '../support/run-metrics';

const ROOT = join(__dirname, '..', '..');
const ARGS = ['--data', 'phantom', '--preset', 'tiny', '--steps', '5', '--checkpoint-every', '2', '--seed', '5',
  '--prototypes', '64', '--head-hidden', '32', '--bottleneck', '16', '--locals', '2', '--epoch-steps', '2',
  // Centring (tiny's default is Sinkhorn over a queue, which pretrain.test.ts resumes): the centre comes back too.
  '--centering', 'centre'];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'reef-kill-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs the CLI; resolves with its exit code, or kills it with SIGKILL once `killWhen` holds. */
function reef(args: string[], killWhen?: () => Promise<boolean>): Promise<number | string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin/reef.mjs'), 'pretrain', ...args], {
      cwd: ROOT,
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp/reef-xdg' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let timer: NodeJS.Timeout | undefined;
    if (killWhen) {
      timer = setInterval(() => {
        void killWhen().then((yes) => {
          if (yes) child.kill('SIGKILL');
        });
      }, 100);
    }
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (timer) clearInterval(timer);
      if (code !== 0 && signal !== 'SIGKILL') reject(new Error(`reef pretrain exited with ${code}:\n${stderr.slice(-2000)}`));
      else resolve(signal ?? code ?? -1);
    });
  });
}

describe('reef pretrain under kill -9', () => {
  it('resumes after SIGKILL to the metrics of an uninterrupted run', async () => {
    const straight = join(dir, 'straight');
    expect(await reef([...ARGS, '--out', straight])).toBe(0);
    const want = await metricsWithoutTimings(straight);
    expect(want.map((r) => r.step)).toEqual([1, 2, 3, 4, 5]);

    const killed = join(dir, 'killed');
    // Kill once step 3 is in metrics.jsonl: the checkpoint at step 2 exists, step 3's line must be cut.
    const outcome = await reef([...ARGS, '--out', killed], async () => {
      if (!existsSync(join(killed, 'metrics.jsonl'))) return false;
      return (await readFile(join(killed, 'metrics.jsonl'), 'utf8')).split('\n').filter((l) => l.trim()).length >= 3;
    });
    expect(outcome).toBe('SIGKILL');
    const latest = JSON.parse(await readFile(join(killed, 'latest.json'), 'utf8')) as { step: number };
    expect(latest.step).toBeGreaterThanOrEqual(2);
    expect(await reef(['--resume', killed])).toBe(0);
    expect(await metricsWithoutTimings(killed)).toEqual(want);
  }, 300_000);
});
