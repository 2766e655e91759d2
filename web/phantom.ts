/** The page's synthetic phantom, shared with the browser test so both sides build the same volume. */
import { makePhantom, type Volume } from '../src/index.js';

export type PhantomKind = 'head' | 'body';

/**
 * A size³ phantom over a fixed field of view (head 192 mm, body 384 mm), so every size shows the
 * same anatomy; seed 1 for the noise and lesions.
 */
export function pagePhantom(size: number, kind: PhantomKind): Volume {
  if (!Number.isInteger(size) || size < 8 || size > 512) throw new Error(`phantom side ${size}: expected a whole number in 8…512`);
  const mm = (kind === 'head' ? 192 : 384) / size;
  const vol = makePhantom({ shape: [size, size, size], spacing: [mm, mm, mm], kind, seed: 1 });
  vol.name = `phantom-${kind}-${size}`;
  return vol;
}
