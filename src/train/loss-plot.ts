/**
 * Loss curves as a standalone SVG (no library, opens in any browser): one line per series against
 * the step, the raw values faint and a running mean on top, log-scaled y when the values span more
 * than a decade.
 */

export interface LossSeries {
  name: string;
  /** [step, value] pairs; non-finite values are left out (they are reported elsewhere). */
  points: readonly (readonly [number, number])[];
}

export interface LossPlotOptions {
  title?: string;
  width?: number;
  height?: number;
  /** Window of the running mean, in points (default: 2% of the longest series, at least 1). */
  smooth?: number;
}

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Round tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, n: number): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(1) : String(Number(v.toPrecision(4)));
}

function runningMean(values: readonly number[], window: number): number[] {
  const out: number[] = [];
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i]!;
    if (i >= window) sum -= values[i - window]!;
    out.push(sum / Math.min(i + 1, window));
  }
  return out;
}

export function lossPlotSvg(series: readonly LossSeries[], o: LossPlotOptions = {}): string {
  const W = o.width ?? 800;
  const H = o.height ?? 420;
  const pad = { left: 64, right: 150, top: 36, bottom: 44 };
  const clean = series.map((s) => ({ name: s.name, points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)) }));
  const all = clean.flatMap((s) => s.points);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${pad.left}" y="22" font-size="14">${esc(o.title ?? 'loss')}</text>`,
  ];
  if (all.length === 0) {
    parts.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle" fill="#888">no finite values yet</text>`, '</svg>');
    return parts.join('\n');
  }
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs, x0 + 1);
  const positive = ys.every((y) => y > 0);
  const yMin = Math.min(...ys);
  const yMax = Math.max(...ys);
  const log = positive && yMax / yMin > 10;
  const ty = (y: number) => (log ? Math.log10(y) : y);
  let y0 = ty(yMin);
  let y1 = ty(yMax);
  if (y1 - y0 < 1e-12) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  const margin = 0.04 * (y1 - y0);
  y0 -= margin;
  y1 += margin;
  const px = (x: number) => pad.left + ((x - x0) / (x1 - x0)) * (W - pad.left - pad.right);
  const py = (y: number) => H - pad.bottom - ((ty(y) - y0) / (y1 - y0)) * (H - pad.top - pad.bottom);
  const plotRight = W - pad.right;
  const plotBottom = H - pad.bottom;

  // Axes and grid.
  parts.push(`<rect x="${pad.left}" y="${pad.top}" width="${plotRight - pad.left}" height="${plotBottom - pad.top}" fill="none" stroke="#444"/>`);
  for (const t of ticks(x0, x1, 6)) {
    const x = px(t).toFixed(1);
    parts.push(`<line x1="${x}" y1="${pad.top}" x2="${x}" y2="${plotBottom}" stroke="#eee"/>`, `<text x="${x}" y="${plotBottom + 16}" text-anchor="middle">${fmt(t)}</text>`);
  }
  const yTicks = log
    ? ticks(Math.floor(y0), Math.ceil(y1), Math.max(1, Math.ceil(y1) - Math.floor(y0))).filter((e) => e >= y0 && e <= y1).map((e) => 10 ** e)
    : ticks(y0, y1, 5);
  for (const t of yTicks) {
    const y = py(t).toFixed(1);
    parts.push(`<line x1="${pad.left}" y1="${y}" x2="${plotRight}" y2="${y}" stroke="#eee"/>`, `<text x="${pad.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`);
  }
  parts.push(`<text x="${(pad.left + plotRight) / 2}" y="${H - 8}" text-anchor="middle">step</text>`);
  if (log) parts.push(`<text x="14" y="${pad.top - 10}" fill="#666">log scale</text>`);

  // Series: raw values faint, running mean solid, legend on the right.
  const longest = Math.max(...clean.map((s) => s.points.length));
  const window = Math.max(1, o.smooth ?? Math.round(longest * 0.02));
  clean.forEach((s, i) => {
    if (s.points.length === 0) return;
    const colour = COLOURS[i % COLOURS.length]!;
    const path = (pts: readonly (readonly [number, number])[]) => pts.map(([x, y], j) => `${j ? 'L' : 'M'}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join('');
    const smooth = runningMean(s.points.map((p) => p[1]), window).map((y, j) => [s.points[j]![0], y] as const);
    if (window > 1) parts.push(`<path d="${path(s.points)}" fill="none" stroke="${colour}" stroke-opacity="0.25" stroke-width="1"/>`);
    parts.push(`<path d="${path(smooth)}" fill="none" stroke="${colour}" stroke-width="1.8"/>`);
    const ly = pad.top + 8 + i * 18;
    const last = s.points[s.points.length - 1]![1];
    parts.push(
      `<line x1="${plotRight + 12}" y1="${ly}" x2="${plotRight + 32}" y2="${ly}" stroke="${colour}" stroke-width="2"/>`,
      `<text x="${plotRight + 38}" y="${ly}" dominant-baseline="middle">${esc(s.name)} ${fmt(last)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Series from metrics records: one per numeric field among `fields`, against `step`. */
export function seriesFromMetrics(records: readonly Record<string, unknown>[], fields: readonly string[]): LossSeries[] {
  return fields.map((name) => ({
    name,
    points: records.flatMap((r) => (typeof r.step === 'number' && typeof r[name] === 'number' ? [[r.step, r[name] as number] as const] : [])),
  }));
}
