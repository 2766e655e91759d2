/**
 * The `reef` command line. Thin: parses flags and calls the library (and kernels-bench for `bench`).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runBench } from '../../kernels-bench/main.js';
import { runAttentionBench } from '../../kernels-bench/attention.js';
import { benchModel } from '../../kernels-bench/models.js';
import { preset } from '../models/swin3d/config.js';
import { fmtBytes } from '../gpu/errors.js';
import { Runtime } from '../gpu/runtime.js';
import { MATMUL_VARIANTS, type MatmulVariant } from '../ops/matmul.js';
import { runDemo } from './demo.js';
import { parseHuWindow, runFeatures } from './features.js';
import { runPretrain } from './pretrain.js';
import { parsePretrainArgs, PRETRAIN_USAGE } from './pretrain-args.js';
import { MERGE_ORDERS, type MergeOrder } from '../ops/patch-merge.js';

const USAGE = `reef — WebGPU engine for volumetric transformers

usage: reef <command> [flags]

commands:
  info                       the WebGPU adapter, its features and limits, and the kernel variants reef picks
  demo [--steps N] [--profile]
                             train a small MLP classifier on the GPU (the end-to-end smoke run)
  ${PRETRAIN_USAGE}
                             self-supervised pretraining (DINO + iBOT + KoLeo) of a CoralBay encoder:
                             progress bar, RUN/metrics.jsonl, RUN/loss.svg, checkpoints, --resume,
                             RUN/backbone.safetensors for reef features
  features --weights W.safetensors|W.pt --input X.nii[.gz] --out F.safetensors
        [--merging merging|merging-1.5|mergingv2] [--use-v2|--no-use-v2] [--no-normalize]
        [--hu-window lo,hi] [--f16]
                             SwinViT / CoralBay encoder features of a CT volume (config inferred
                             from the checkpoint; use_v2 from its keys unless given)
  bench [--quick] [--sizes 256,512] [--no-peers] [--no-coralbay] [--no-f16]
        [--variants regblock,tiled] [--out DIR] [--budget-ms MS] [--sweep]
                             peaks, then matmul for reef's variants, the naive kernel and peer engines;
                             --sweep times each variant's tile configurations instead
  bench --attention [--side 96] [--reps 3]
                             stage-1 window attention (fs 48): fused vs materialised, time and peak memory
  bench --models [--side 96] [--reps 2] [--warmup 1] [--model swin-b,coralbay-b] [--no-backward]
                             whole-model forward and forward+backward on one crop, with peak memory

environment: REEF_PROFILE=1 profiles every dispatch; REEF_MATMUL=naive|regblock|tiled forces a matmul variant;
REEF_DAWN_FLAGS adds Dawn toggles; REEF_POLL_BACKOFF=0 turns off back-off polling under Node.`;

/** Repository (or package) root: the nearest folder above the bundle with reef's package.json. */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    try {
      if ((JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string }).name === 'reef') return dir;
    } catch {
      /* not here */
    }
    dir = dirname(dir);
  }
  return process.cwd();
}
const ROOT = findRoot();

async function withRuntime(profile: boolean, fn: (rt: Runtime) => Promise<number>): Promise<number> {
  const rt = await Runtime.create({ profile: profile || undefined });
  try {
    const code = await fn(rt);
    if (rt.profiler) console.log(`\n${await rt.profileTable()}`);
    return code;
  } finally {
    rt.dispose();
  }
}

async function info(): Promise<number> {
  return withRuntime(false, async (rt) => {
    const c = rt.caps;
    console.log(rt.describe());
    console.log(`vendor ${c.vendor}, architecture ${c.architecture}, device ${c.device}`);
    console.log(`subgroup size ${c.subgroupMinSize}–${c.subgroupMaxSize}; workgroup storage ${fmtBytes(c.maxWorkgroupStorageSize)}; ${c.maxInvocationsPerWorkgroup} invocations/workgroup`);
    console.log(`max buffer ${fmtBytes(c.maxBufferSize)}; max storage binding ${fmtBytes(c.maxStorageBufferBindingSize)}`);
    console.log(`matmul variant: ${rt.host.env('REEF_MATMUL') ?? (c.isCpu ? 'regblock (CPU adapter: no workgroup memory, no barriers)' : 'tiled (workgroup-memory tiles)')}`);
    return 0;
  });
}

function listOf(v: string | undefined): string[] | undefined {
  return v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean);
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'info':
        return await info();
      case 'demo': {
        const { values } = parseArgs({ args: rest, options: { steps: { type: 'string', default: '200' }, profile: { type: 'boolean', default: false } } });
        return await withRuntime(values.profile, (rt) => runDemo(rt, { steps: Number(values.steps) }));
      }
      case 'pretrain': {
        const opts = parsePretrainArgs(rest);
        return await withRuntime(false, (rt) => runPretrain(rt, opts));
      }
      case 'features': {
        const { values } = parseArgs({
          args: rest,
          options: {
            weights: { type: 'string' },
            input: { type: 'string' },
            out: { type: 'string' },
            merging: { type: 'string', default: 'merging' },
            'use-v2': { type: 'boolean' },
            'no-use-v2': { type: 'boolean' },
            'no-normalize': { type: 'boolean', default: false },
            'hu-window': { type: 'string' },
            f16: { type: 'boolean', default: false },
          },
        });
        for (const f of ['weights', 'input', 'out'] as const) if (!values[f]) throw new Error(`--${f} is required\n\n${USAGE}`);
        const merge = values.merging as MergeOrder;
        if (!(merge in MERGE_ORDERS)) throw new Error(`--merging ${merge}: expected one of ${Object.keys(MERGE_ORDERS).join(', ')}`);
        if (values['use-v2'] && values['no-use-v2']) throw new Error('--use-v2 and --no-use-v2 contradict each other');
        const useV2 = values['use-v2'] ? true : values['no-use-v2'] ? false : undefined;
        return await withRuntime(false, async (rt) => {
          await runFeatures(rt, {
            weights: values.weights!,
            input: values.input!,
            out: values.out!,
            merge,
            useV2,
            normalize: !values['no-normalize'],
            huWindow: values['hu-window'] ? parseHuWindow(values['hu-window']) : undefined,
            f16: values.f16,
          });
          return 0;
        });
      }
      case 'bench': {
        const { values } = parseArgs({
          args: rest,
          options: {
            quick: { type: 'boolean', default: false },
            sizes: { type: 'string' },
            'no-peers': { type: 'boolean', default: false },
            'no-coralbay': { type: 'boolean', default: false },
            'no-f16': { type: 'boolean', default: false },
            variants: { type: 'string' },
            peers: { type: 'string' },
            out: { type: 'string' },
            'budget-ms': { type: 'string' },
            sweep: { type: 'boolean', default: false },
            attention: { type: 'boolean', default: false },
            models: { type: 'boolean', default: false },
            model: { type: 'string', default: 'swin-b,coralbay-b' },
            side: { type: 'string', default: '96' },
            reps: { type: 'string' },
            warmup: { type: 'string' },
            'no-backward': { type: 'boolean', default: false },
          },
        });
        if (values.attention || values.models) {
          const side = Number(values.side);
          return await withRuntime(false, async (rt) => {
            console.log(`adapter: ${rt.describe()}\ndate: ${new Date().toISOString()}`);
            if (values.attention) {
              await runAttentionBench(rt, { side, reps: values.reps ? Number(values.reps) : 3, backward: !values['no-backward'] });
            }
            if (values.models) {
              for (const name of listOf(values.model) ?? []) {
                const cfg = preset(name);
                console.log(`\n${name} on 1×1×${side}³`);
                await benchModel(rt, cfg, [side, side, side], {
                  backward: !values['no-backward'],
                  reps: values.reps ? Number(values.reps) : 2,
                  warmup: values.warmup ? Number(values.warmup) : 1,
                });
              }
            }
            return 0;
          });
        }
        const variants = listOf(values.variants) as MatmulVariant[] | undefined;
        for (const v of variants ?? []) if (!MATMUL_VARIANTS.includes(v)) throw new Error(`unknown variant '${v}' (have ${MATMUL_VARIANTS.join(', ')})`);
        const sizes = listOf(values.sizes)?.map(Number) ?? (values.quick ? [256, 512, 1024] : undefined);
        // Timestamps for the kernel-only column: the runtime profiles every dispatch.
        const rt = await Runtime.create({ profile: true });
        try {
          await runBench(rt, {
            root: ROOT,
            sizes,
            coralbay: !values['no-coralbay'],
            peers: values['no-peers'] ? [] : (listOf(values.peers) ?? ['tfjs-webgpu', 'ort-webgpu', 'ort-cpu']),
            variants,
            f16: !values['no-f16'],
            budgetMs: values['budget-ms'] ? Number(values['budget-ms']) : values.quick ? 1500 : 3000,
            out: values.out,
            sweep: values.sweep,
          });
        } finally {
          rt.dispose();
        }
        return 0;
      }
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return command === undefined ? 1 : 0;
      default:
        console.error(`reef: unknown command '${command}'\n\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    console.error(`reef ${command}: ${(e as Error).message}`);
    if (process.env.REEF_DEBUG) console.error(e);
    return 1;
  }
}
