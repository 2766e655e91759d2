/**
 * The loss picture: a well-formed SVG with one curve and one legend entry per series, points mapped
 * inside the plot area (higher loss drawn higher), log scale only for values spanning over a decade,
 * non-finite values left out, and a placeholder before any value exists.
 */
import { describe, expect, it } from 'vitest';
import { lossPlotSvg, seriesFromMetrics } from '../../src/train/loss-plot';

const coords = (d: string) => [...d.matchAll(/[ML]([\d.]+),([\d.]+)/g)].map((m) => [Number(m[1]), Number(m[2])] as const);

describe('loss plot', () => {
  const records = Array.from({ length: 50 }, (_, i) => ({ step: i + 1, loss: 5 / (i + 1), dino: 2 - i / 50, bad: i === 3 ? NaN : 1 }));

  it('draws every series inside the plot, higher values higher', () => {
    const svg = lossPlotSvg(seriesFromMetrics(records, ['loss', 'dino']), { smooth: 1, width: 800, height: 400 });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    const paths = [...svg.matchAll(/<path d="([^"]+)"/g)].map((m) => m[1]!);
    expect(paths).toHaveLength(2);
    const loss = coords(paths[0]!);
    expect(loss).toHaveLength(50);
    for (const [x, y] of loss) {
      expect(x).toBeGreaterThanOrEqual(64);
      expect(x).toBeLessThanOrEqual(800 - 150);
      expect(y).toBeGreaterThanOrEqual(36);
      expect(y).toBeLessThanOrEqual(400 - 44);
    }
    // Decreasing loss: later points are drawn lower (larger y).
    expect(loss[49]![1]).toBeGreaterThan(loss[0]![1]);
    expect(loss[49]![0]).toBeGreaterThan(loss[0]![0]);
    expect(svg).toContain('log scale'); // 5 → 0.1 spans over a decade
    expect(svg).toContain('>loss ');
    expect(svg).toContain('>dino ');
  });

  it('linear scale for a narrow range; non-finite values are skipped; smoothing adds a faint raw line', () => {
    const svg = lossPlotSvg(seriesFromMetrics(records, ['bad']), { smooth: 5 });
    expect(svg).not.toContain('log scale');
    const paths = [...svg.matchAll(/<path d="([^"]+)"/g)].map((m) => coords(m[1]!));
    expect(paths).toHaveLength(2);
    expect(paths[0]).toHaveLength(49);
    expect(svg).not.toContain('NaN');
  });

  it('a placeholder before any value exists', () => {
    const svg = lossPlotSvg([{ name: 'loss', points: [] }]);
    expect(svg).toContain('no finite values yet');
  });
});
