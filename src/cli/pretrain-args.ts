/**
 * `reef pretrain` flags. Every recipe value is a flag named after it (baseLr → --base-lr,
 * globalScale → --global-scale lo,hi), so nothing in a recipe is out of reach from the command line.
 */
import { parseArgs } from 'node:util';
import { parseEmbeddingMaps } from '../models/swin3d/coralbay-encoder.js';
import { ReefError } from '../gpu/errors.js';
import { RECIPES, type PretrainRecipe } from '../train/pretrain-recipe.js';
import type { PretrainOptions } from './pretrain.js';

const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const RECIPE_KEYS = Object.keys(RECIPES.tiny!) as (keyof PretrainRecipe)[];

export const PRETRAIN_USAGE = `pretrain --data DIR|LIST|sample|phantom --preset ${Object.keys(RECIPES).join('|')} --steps N --out RUN/
        [--batch B] [--seed S] [--checkpoint-every K] [--resume RUN/] [--plot-every N]
        [--loader-workers N] [--data-cache-gb G] [--prepared-cache DIR]
        recipe flags: ${RECIPE_KEYS.filter((k) => k !== 'model' && k !== 'batch').map(kebab).map((k) => `--${k}`).join(' ')}`;

export function parsePretrainArgs(args: string[]): PretrainOptions {
  const recipeFlags = Object.fromEntries(RECIPE_KEYS.filter((k) => k !== 'model').map((k) => [kebab(k), { type: 'string' as const }]));
  const { values } = parseArgs({
    args,
    options: {
      data: { type: 'string' },
      preset: { type: 'string', default: 'tiny' },
      steps: { type: 'string' },
      out: { type: 'string' },
      resume: { type: 'string' },
      seed: { type: 'string', default: '0' },
      'checkpoint-every': { type: 'string', default: '50' },
      'plot-every': { type: 'string', default: '10' },
      'loader-workers': { type: 'string' },
      'data-cache-gb': { type: 'string' },
      'prepared-cache': { type: 'string' },
      ...recipeFlags,
    },
  });
  const v = values as Record<string, string | undefined>;
  const int = (name: string, min: number): number => {
    const x = Number(v[name]);
    if (!Number.isInteger(x) || x < min) throw new ReefError(`--${name} ${v[name]}: expected an integer ≥ ${min}`);
    return x;
  };
  const gib = (name: string): number => {
    const x = Number(v[name]);
    if (!(Number.isFinite(x) && x > 0)) throw new ReefError(`--${name} ${v[name]}: expected a positive number of GiB`);
    return x * 2 ** 30;
  };
  if (!v.resume && !v.out) throw new ReefError('reef pretrain: give --out RUN/ for a new run or --resume RUN/ to continue one');
  if (!v.resume && !v.steps) throw new ReefError('reef pretrain: give --steps N');
  const base = RECIPES[v.preset!];
  if (!base) throw new ReefError(`--preset ${v.preset}: expected one of ${Object.keys(RECIPES).join(', ')}`);
  const overrides: Partial<PretrainRecipe> = {};
  for (const key of RECIPE_KEYS) {
    const text = v[kebab(key)];
    if (text === undefined || key === 'model') continue;
    const current = base[key];
    const flag = `--${kebab(key)}`;
    let value: unknown;
    if (Array.isArray(current)) {
      const parts = text.split(',').map(Number);
      if (parts.length !== 2 || parts.some((p) => !Number.isFinite(p)) || parts[0]! > parts[1]!) throw new ReefError(`${flag} ${text}: expected lo,hi`);
      value = parts;
    } else if (typeof current === 'number') {
      value = Number(text);
      if (!Number.isFinite(value)) throw new ReefError(`${flag} ${text}: expected a number`);
    } else {
      const allowed = key === 'centering' ? ['centre', 'sinkhorn'] : key === 'clipMode' ? ['global', 'per-tensor'] : key === 'windows' ? ['per-view', 'per-sample'] : key === 'centerInit' ? ['zero', 'batch'] : key === 'recompute' ? ['none', 'stages'] : key === 'precision' ? ['auto', 'f16', 'f32'] : null;
      if (allowed && !allowed.includes(text)) throw new ReefError(`${flag} ${text}: expected ${allowed.join(' or ')}`);
      value = key === 'embeddingMaps' ? parseEmbeddingMaps(text, flag).join(',') : text;
    }
    (overrides as Record<string, unknown>)[key] = value;
  }
  return {
    data: v.data,
    preset: v.preset!,
    steps: v.steps ? int('steps', 1) : 0,
    out: v.out,
    resume: v.resume,
    seed: int('seed', 0),
    checkpointEvery: int('checkpoint-every', 0),
    plotEvery: int('plot-every', 1),
    ...(v['loader-workers'] !== undefined ? { loaderWorkers: int('loader-workers', 0) } : {}),
    ...(v['data-cache-gb'] !== undefined ? { dataCacheBytes: gib('data-cache-gb') } : {}),
    ...(v['prepared-cache'] !== undefined ? { preparedCache: v['prepared-cache'] } : {}),
    overrides,
    handleSignals: true,
  };
}
