/**
 * A synthetic, CT-like phantom in Hounsfield units for tests and benchmarks (never a download).
 *
 * The anatomy is defined in millimetres relative to the field of view, so any shape and spacing
 * give the same picture at a different sampling. Axes follow the NIfTI loading convention:
 * (i, j, k) = (x: left→right, y: anterior→posterior, z: inferior→superior) with tensor layout
 * `data[(i*nj + j)*nk + k]`. Values are whole HU in [−1024, 3071] (as an int16 scan stores them).
 *
 * head: air, scalp (soft tissue 40), a thin fat layer (−100), a skull with dense outer/inner
 *       tables (~1400) and diploë (~600), brain (grey 40 / white 28), ventricles (CSF 8), a few
 *       lesions, and a curved head holder below the head (plastic ~ −80; like real scans).
 * body: subcutaneous fat, muscle wall, lungs (−850) in the upper half, liver (60), a spine column
 *       (cortical 900 around cancellous 250), aorta with contrast (180), a table, lesions.
 * Both get Gaussian noise (default 12 HU) from a seeded stream.
 */
import type { Volume } from './nifti.js';
import { DataError } from './errors.js';
import { Rng } from './rng.js';

export interface PhantomOptions {
  shape: [number, number, number];
  /** Voxel size in mm along (i, j, k); default 1 mm. */
  spacing?: [number, number, number];
  kind?: 'head' | 'body';
  seed?: number;
  /** Standard deviation of the voxel noise, HU; 0 gives a piecewise-constant phantom. */
  noise?: number;
  /** Number of random lesions. */
  lesions?: number;
}

interface Ellipsoid {
  c: [number, number, number]; // centre, as a fraction of the half-FOV (−1..1)
  r: [number, number, number]; // semi-axes, as a fraction of the half-FOV
}

/** Squared normalised radius of point p (in half-FOV units) in ellipsoid e. */
function rho2(e: Ellipsoid, x: number, y: number, z: number): number {
  const a = (x - e.c[0]) / e.r[0];
  const b = (y - e.c[1]) / e.r[1];
  const c = (z - e.c[2]) / e.r[2];
  return a * a + b * b + c * c;
}

function scaled(e: Ellipsoid, f: number): Ellipsoid {
  return { c: e.c, r: [e.r[0] * f, e.r[1] * f, e.r[2] * f] };
}

interface Lesion extends Ellipsoid {
  hu: number;
}

export function makePhantom(opts: PhantomOptions): Volume {
  const { shape, kind = 'head', seed = 0, noise = 12 } = opts;
  const spacing = opts.spacing ?? [1, 1, 1];
  if (shape.length !== 3 || !shape.every((n) => Number.isInteger(n) && n >= 1)) throw new DataError(`makePhantom: shape must be 3 positive integers, got [${shape.join(', ')}]`);
  if (spacing.length !== 3 || !spacing.every((s) => Number.isFinite(s) && s > 0)) throw new DataError(`makePhantom: spacing must be 3 positive numbers, got [${spacing.join(', ')}]`);
  const rng = Rng.fromKeys(seed, kind === 'head' ? 1 : 2);
  const [ni, nj, nk] = shape;
  // Physical half-extents; the phantom is laid out in units of the largest one so it stays round.
  const half = [0, 1, 2].map((d) => (shape[d]! * spacing[d]!) / 2);
  const unit = Math.max(...half);
  const toUnit = (d: number, idx: number) => ((idx + 0.5) * spacing[d]! - half[d]!) / unit;
  // Anatomy fits inside the smallest extent, so a slab-shaped FOV still shows air around it.
  const fit = [0, 1, 2].map((d) => half[d]! / unit);

  const lesions: Lesion[] = [];
  const nLesions = opts.lesions ?? 4;
  const out = new Float32Array(ni * nj * nk);

  if (kind === 'head') {
    const head: Ellipsoid = { c: [0, -0.04 * fit[1]!, 0.05 * fit[2]!], r: [0.72 * fit[0]!, 0.84 * fit[1]!, 0.8 * fit[2]!] };
    const scalpIn = scaled(head, 0.96);
    const skullOut = scaled(head, 0.93);
    const diploeOut = scaled(head, 0.905);
    const diploeIn = scaled(head, 0.865);
    const brain = scaled(head, 0.84);
    const white = scaled(head, 0.6);
    const ventL: Ellipsoid = { c: [head.c[0] - 0.12 * head.r[0], head.c[1], head.c[2] + 0.1 * head.r[2]], r: [0.07 * head.r[0], 0.3 * head.r[1], 0.15 * head.r[2]] };
    const ventR: Ellipsoid = { c: [head.c[0] + 0.12 * head.r[0], ventL.c[1], ventL.c[2]], r: ventL.r };
    // The holder: a shell behind the head (posterior, +y), open towards the face.
    const holderOut: Ellipsoid = { c: head.c, r: [head.r[0] * 1.1, head.r[1] * 1.1, head.r[2] * 1.1] };
    const holderIn = scaled(holderOut, 0.96);
    for (let n = 0; n < nLesions; n++) {
      // Inside the brain, away from the skull.
      const u = [rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)];
      const size = rng.uniform(0.04, 0.1);
      lesions.push({
        c: [brain.c[0] + u[0]! * brain.r[0], brain.c[1] + u[1]! * brain.r[1], brain.c[2] + u[2]! * brain.r[2]],
        r: [size, size * rng.uniform(0.7, 1.3), size * rng.uniform(0.7, 1.3)],
        hu: rng.bool(0.5) ? rng.uniform(55, 90) : rng.uniform(-10, 15),
      });
    }
    fill(out, shape, toUnit, (x, y, z) => {
      for (const l of lesions) if (rho2(l, x, y, z) < 1) return l.hu;
      const rh = rho2(head, x, y, z);
      if (rh >= 1) {
        const ro = rho2(holderOut, x, y, z);
        return ro < 1 && rho2(holderIn, x, y, z) >= 1 && y > head.c[1] + 0.35 * head.r[1] ? -80 : -1000;
      }
      if (rho2(scalpIn, x, y, z) >= 1) return 40;
      if (rho2(skullOut, x, y, z) >= 1) return -100;
      if (rho2(diploeOut, x, y, z) >= 1) return 1400;
      if (rho2(diploeIn, x, y, z) >= 1) return 600;
      if (rho2(brain, x, y, z) >= 1) return 1300;
      if (rho2(ventL, x, y, z) < 1 || rho2(ventR, x, y, z) < 1) return 8;
      return rho2(white, x, y, z) < 1 ? 28 : 40;
    });
  } else {
    const body: Ellipsoid = { c: [0, -0.05 * fit[1]!, 0], r: [0.85 * fit[0]!, 0.6 * fit[1]!, 2 * fit[2]!] };
    const muscle = scaled(body, 0.9);
    const cavity = scaled(body, 0.8);
    const lungL: Ellipsoid = { c: [-0.4 * body.r[0], body.c[1], 0.45 * fit[2]!], r: [0.32 * body.r[0], 0.65 * body.r[1], 0.5 * fit[2]!] };
    const lungR: Ellipsoid = { c: [0.4 * body.r[0], lungL.c[1], lungL.c[2]], r: lungL.r };
    const liver: Ellipsoid = { c: [-0.35 * body.r[0], body.c[1] - 0.1 * body.r[1], -0.3 * fit[2]!], r: [0.4 * body.r[0], 0.55 * body.r[1], 0.35 * fit[2]!] };
    const spineC = [0, body.c[1] + 0.6 * body.r[1]];
    const spineR = 0.13 * body.r[1];
    const aortaC = [0.1 * body.r[0], body.c[1] + 0.3 * body.r[1]];
    const aortaR = 0.07 * body.r[1];
    const tableY = body.c[1] + body.r[1] * 1.08;
    for (let n = 0; n < nLesions; n++) {
      const inLiver = n % 2 === 0;
      const host = inLiver ? liver : lungR;
      const u = [rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)];
      const size = rng.uniform(0.03, 0.07);
      lesions.push({
        c: [host.c[0] + u[0]! * host.r[0], host.c[1] + u[1]! * host.r[1], host.c[2] + u[2]! * host.r[2]],
        r: [size, size * rng.uniform(0.7, 1.3), size * rng.uniform(0.7, 1.3)],
        hu: inLiver ? rng.uniform(10, 30) : rng.uniform(20, 60),
      });
    }
    fill(out, shape, toUnit, (x, y, z) => {
      if (rho2(body, x, y, z) >= 1) return y > tableY && y < tableY + 0.04 * fit[1]! ? 300 : -1000;
      for (const l of lesions) if (rho2(l, x, y, z) < 1) return l.hu;
      const ds = Math.hypot(x - spineC[0]!, y - spineC[1]!);
      if (ds < spineR) return ds < 0.7 * spineR ? 250 : 900;
      if (Math.hypot(x - aortaC[0]!, y - aortaC[1]!) < aortaR) return 180;
      if (rho2(muscle, x, y, z) >= 1) return -100;
      if (rho2(cavity, x, y, z) >= 1) return 50;
      if (rho2(lungL, x, y, z) < 1 || rho2(lungR, x, y, z) < 1) return -850;
      if (rho2(liver, x, y, z) < 1) return 60;
      return 35;
    });
  }

  if (noise > 0) {
    for (let p = 0; p < out.length; p++) out[p] = out[p]! + noise * rng.normal();
  }
  for (let p = 0; p < out.length; p++) out[p] = Math.min(3071, Math.max(-1024, Math.round(out[p]!)));
  const affine = [spacing[0], 0, 0, 0, 0, spacing[1], 0, 0, 0, 0, spacing[2], 0, 0, 0, 0, 1];
  return { data: out, shape: [ni, nj, nk], spacing: [...spacing], affine, dtype: 'int16', name: `phantom-${kind}-${seed}` };
}

function fill(
  out: Float32Array,
  shape: readonly number[],
  toUnit: (d: number, idx: number) => number,
  hu: (x: number, y: number, z: number) => number,
): void {
  const [ni, nj, nk] = shape as [number, number, number];
  const zs = Float64Array.from({ length: nk }, (_, k) => toUnit(2, k));
  let p = 0;
  for (let i = 0; i < ni; i++) {
    const x = toUnit(0, i);
    for (let j = 0; j < nj; j++) {
      const y = toUnit(1, j);
      for (let k = 0; k < nk; k++) out[p++] = hu(x, y, zs[k]!);
    }
  }
}
