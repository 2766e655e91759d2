/**
 * Entry of `node kernels-bench/tiny-step.mjs`: the `tiny` step bench without the CLI.
 *   --profile [--warmup N]          per-kernel GPU time table of one step
 *   --steps N --env A=x;B=y,...     alternate configurations given as environment settings
 *                                   (e.g. `REEF_CONV3D=gemm,REEF_CONV3D=` for forced vs default)
 *   --steps N --precision f32,f16   alternate the encoders' activation types
 *   --conv [--reps N] [--variants gemm,rows-sg:16x3] [--shapes 0,2]   conv3d at the step's shapes
 *                                   (variant[:TWxV] sets the rows tiles)
 */
import { parseArgs } from 'node:util';
import { Runtime } from '../src/gpu/runtime.js';
import { profileTinyStep, runTinySteps, type TinyStepConfig } from './tiny-step.js';
import { benchTinyConvs, parseConvConfig, TINY_CONV_SHAPES } from './conv3d.js';

function envConfig(spec: string): TinyStepConfig {
  const pairs = spec.split(';').filter(Boolean).map((kv) => kv.split('=') as [string, string | undefined]);
  return {
    name: spec || '(default)',
    before: () => {
      for (const [k, v] of pairs) {
        if (v === undefined || v === '') delete process.env[k];
        else process.env[k] = v;
      }
    },
  };
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { conv: { type: 'boolean', default: false }, reps: { type: 'string', default: '5' }, variants: { type: 'string' }, shapes: { type: 'string' }, profile: { type: 'boolean', default: false }, warmup: { type: 'string', default: '1' }, steps: { type: 'string', default: '5' }, env: { type: 'string', default: '' }, precision: { type: 'string' } } });
  const rt = await Runtime.create({ profile: values.profile || values.conv });
  try {
    console.log(`adapter: ${rt.describe()}\ndate: ${new Date().toISOString()}`);
    if (values.conv) {
      const shapes = values.shapes ? values.shapes.split(',').map((i) => TINY_CONV_SHAPES[Number(i)]!) : undefined;
      await benchTinyConvs(rt, { reps: Number(values.reps), shapes, configs: values.variants?.split(',').map(parseConvConfig) });
      return 0;
    }
    if (values.profile) {
      const cfg = envConfig(values.env.split(',')[0] ?? '');
      console.log(await profileTinyStep(rt, { warmup: Number(values.warmup), before: cfg.before }));
      return 0;
    }
    const configs: TinyStepConfig[] = values.precision
      ? values.precision.split(',').map((p) => ({ name: `activations ${p}`, options: { precision: p as 'f16' | 'f32' } }))
      : values.env.split(',').map(envConfig);
    const res = await runTinySteps(rt, { steps: Number(values.steps), configs });
    const base = res[0]!.medianMs;
    for (const r of res) {
      console.log(`${r.name}: median of steps 2–${r.stepMs.length} ${r.medianMs.toFixed(0)} ms (${(base / r.medianMs).toFixed(2)}× the first), steps ${r.stepMs.map((m) => m.toFixed(0)).join(', ')}`);
    }
    return 0;
  } finally {
    rt.dispose();
  }
}
